// CUDA kernels for multi-scale deformable attention (see ../ms_deform_attn.h for shapes).
//
// One thread per (n, q, m, c) output element, every level and point handled inside the
// kernel, so each call is a single launch. Consecutive threads are consecutive channels of
// one (n, q, m) item, so value rows are read coalesced. The backward scatters grad_value with
// atomics and reduces the per-channel grad_sampling_locations / grad_attention_weights terms
// with warp shuffles over the item's channels. float16 / bfloat16 compute and accumulate in
// float32.
#include "../ms_deform_attn.h"

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAGuard.h>

#include <numeric>

namespace mask2former::msda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarp = 32;

struct Dims {
  int64_t batch, keys, heads, channels, queries, levels, points;
};

Dims dims_of(const at::Tensor& value, const at::Tensor& sampling_locations) {
  return {value.size(0), value.size(1), value.size(2), value.size(3),
          sampling_locations.size(1), sampling_locations.size(3), sampling_locations.size(4)};
}

int64_t num_blocks(int64_t threads) {
  return (threads + kThreads - 1) / kThreads;
}

// Bilinear neighbourhood as in grid_sample(align_corners=False) with zero padding:
// corners (y0,x0), (y0,x1), (y1,x0), (y1,x1); key = -1 for corners outside the map.
template <typename acc_t>
struct Bilinear {
  acc_t fx, fy;
  int64_t key[4];
  acc_t weight[4];
};

template <typename acc_t>
__device__ __forceinline__ bool bilinear(
    acc_t loc_x, acc_t loc_y, int64_t height, int64_t width, Bilinear<acc_t>& b) {
  const acc_t x = loc_x * static_cast<acc_t>(width) - acc_t(0.5);
  const acc_t y = loc_y * static_cast<acc_t>(height) - acc_t(0.5);
  if (!(x >= acc_t(-1) && y >= acc_t(-1) && x < static_cast<acc_t>(width) &&
        y < static_cast<acc_t>(height))) {
    return false;
  }
  const acc_t x0f = floor(x);
  const acc_t y0f = floor(y);
  const int64_t x0 = static_cast<int64_t>(x0f);
  const int64_t y0 = static_cast<int64_t>(y0f);
  b.fx = x - x0f;
  b.fy = y - y0f;
  const bool in_x[2] = {x0 >= 0, x0 + 1 < width};
  const bool in_y[2] = {y0 >= 0, y0 + 1 < height};
  const acc_t wx[2] = {acc_t(1) - b.fx, b.fx};
  const acc_t wy[2] = {acc_t(1) - b.fy, b.fy};
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const int dy = k >> 1, dx = k & 1;
    const bool inside = in_y[dy] && in_x[dx];
    b.key[k] = inside ? (y0 + dy) * width + x0 + dx : -1;
    b.weight[k] = inside ? wy[dy] * wx[dx] : acc_t(0);
  }
  return true;
}

template <typename scalar_t, typename acc_t>
__global__ void forward_kernel(
    const scalar_t* __restrict__ value,
    const int64_t* __restrict__ shapes,
    const int64_t* __restrict__ starts,
    const scalar_t* __restrict__ locations,
    const scalar_t* __restrict__ weights,
    scalar_t* __restrict__ output,
    Dims d,
    int64_t total) {
  const int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= total) {
    return;
  }
  const int64_t c = index % d.channels;
  const int64_t item = index / d.channels;  // (n, q, m)
  const int64_t m = item % d.heads;
  const int64_t n = item / (d.heads * d.queries);
  const int64_t row_stride = d.heads * d.channels;
  const int64_t lp = d.levels * d.points;
  const scalar_t* value_c = value + n * d.keys * row_stride + m * d.channels + c;
  const scalar_t* loc = locations + item * lp * 2;
  const scalar_t* attn = weights + item * lp;
  acc_t acc = 0;
  Bilinear<acc_t> b;
  for (int64_t l = 0; l < d.levels; ++l) {
    const int64_t height = shapes[2 * l], width = shapes[2 * l + 1];
    const scalar_t* value_l = value_c + starts[l] * row_stride;
    for (int64_t p = 0; p < d.points; ++p) {
      const int64_t i = l * d.points + p;
      if (!bilinear<acc_t>(loc[2 * i], loc[2 * i + 1], height, width, b)) {
        continue;
      }
      acc_t sample = 0;
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        if (b.key[k] >= 0) {
          sample += b.weight[k] * static_cast<acc_t>(value_l[b.key[k] * row_stride]);
        }
      }
      acc += static_cast<acc_t>(attn[i]) * sample;
    }
  }
  output[index] = static_cast<scalar_t>(acc);
}

// Sum over the `width` lanes of an aligned lane segment; every lane of the warp must call it.
template <typename acc_t>
__device__ __forceinline__ acc_t segment_sum(acc_t v, int width) {
  for (int offset = width / 2; offset > 0; offset /= 2) {
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  }
  return v;
}

// Threads past `total` stay alive (inactive) so that every warp shuffle sees a full warp.
// `segment` = gcd(channels, 32): segments never straddle items; when an item spans several
// segments their leaders combine the reductions with atomics (outputs are zero-initialised).
template <typename scalar_t, typename acc_t>
__global__ void backward_kernel(
    const scalar_t* __restrict__ grad_output,
    const scalar_t* __restrict__ value,
    const int64_t* __restrict__ shapes,
    const int64_t* __restrict__ starts,
    const scalar_t* __restrict__ locations,
    const scalar_t* __restrict__ weights,
    acc_t* __restrict__ grad_value,
    acc_t* __restrict__ grad_locations,
    acc_t* __restrict__ grad_weights,
    Dims d,
    int64_t total,
    int segment) {
  const int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const bool active = index < total;
  const int64_t safe = active ? index : 0;
  const int64_t c = safe % d.channels;
  const int64_t item = safe / d.channels;
  const int64_t m = item % d.heads;
  const int64_t n = item / (d.heads * d.queries);
  const int64_t row_stride = d.heads * d.channels;
  const int64_t lp = d.levels * d.points;
  const int64_t value_offset = n * d.keys * row_stride + m * d.channels + c;
  const scalar_t* loc = locations + item * lp * 2;
  const scalar_t* attn = weights + item * lp;
  const acc_t grad = active ? static_cast<acc_t>(grad_output[safe]) : acc_t(0);
  const bool leader = (threadIdx.x % segment) == 0;
  const bool single_segment = d.channels == segment;
  Bilinear<acc_t> b;
  for (int64_t l = 0; l < d.levels; ++l) {
    const int64_t height = shapes[2 * l], width = shapes[2 * l + 1];
    const int64_t level_offset = value_offset + starts[l] * row_stride;
    for (int64_t p = 0; p < d.points; ++p) {
      const int64_t i = l * d.points + p;
      // Branches below depend only on the item, and items are segment-aligned, so a segment
      // is never split; but different items in one warp may diverge, hence no early exit
      // before the shuffles.
      const bool valid = active && bilinear<acc_t>(loc[2 * i], loc[2 * i + 1], height, width, b);
      acc_t dots[4] = {0, 0, 0, 0};
      const acc_t a = static_cast<acc_t>(attn[i]);
      if (valid) {
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          if (b.key[k] >= 0) {
            const int64_t offset = level_offset + b.key[k] * row_stride;
            dots[k] = grad * static_cast<acc_t>(value[offset]);
            atomicAdd(grad_value + offset, a * b.weight[k] * grad);
          }
        }
      }
      acc_t grad_attn = 0, grad_x = 0, grad_y = 0;
      if (valid) {
        grad_attn = b.weight[0] * dots[0] + b.weight[1] * dots[1] + b.weight[2] * dots[2] +
            b.weight[3] * dots[3];
        grad_x = a * static_cast<acc_t>(width) *
            ((dots[1] - dots[0]) * (acc_t(1) - b.fy) + (dots[3] - dots[2]) * b.fy);
        grad_y = a * static_cast<acc_t>(height) *
            ((dots[2] - dots[0]) * (acc_t(1) - b.fx) + (dots[3] - dots[1]) * b.fx);
      }
      grad_attn = segment_sum(grad_attn, segment);
      grad_x = segment_sum(grad_x, segment);
      grad_y = segment_sum(grad_y, segment);
      if (active && leader) {
        acc_t* gl = grad_locations + (item * lp + i) * 2;
        acc_t* ga = grad_weights + item * lp + i;
        if (single_segment) {
          gl[0] = grad_x;
          gl[1] = grad_y;
          *ga = grad_attn;
        } else {
          atomicAdd(gl, grad_x);
          atomicAdd(gl + 1, grad_y);
          atomicAdd(ga, grad_attn);
        }
      }
    }
  }
}

}  // namespace

at::Tensor forward_cuda(
    const at::Tensor& value,
    const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index,
    const at::Tensor& sampling_locations,
    const at::Tensor& attention_weights) {
  const c10::cuda::CUDAGuard guard(value.device());
  const Dims d = dims_of(value, sampling_locations);
  auto output = at::empty({d.batch, d.queries, d.heads * d.channels}, value.options());
  const int64_t total = output.numel();
  if (total == 0) {
    return output;
  }
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, value.scalar_type(), "ms_deform_attn_forward_cuda", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        forward_kernel<scalar_t, acc_t><<<num_blocks(total), kThreads, 0, stream>>>(
            value.const_data_ptr<scalar_t>(), spatial_shapes.const_data_ptr<int64_t>(),
            level_start_index.const_data_ptr<int64_t>(),
            sampling_locations.const_data_ptr<scalar_t>(),
            attention_weights.const_data_ptr<scalar_t>(), output.mutable_data_ptr<scalar_t>(),
            d, total);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  return output;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> backward_cuda(
    const at::Tensor& grad_output,
    const at::Tensor& value,
    const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index,
    const at::Tensor& sampling_locations,
    const at::Tensor& attention_weights) {
  const c10::cuda::CUDAGuard guard(value.device());
  const Dims d = dims_of(value, sampling_locations);
  // Gradients accumulate in the op-math type (float32 for float16 / bfloat16 inputs).
  const auto acc_dtype = at::toOpMathType(value.scalar_type());
  const auto acc_options = value.options().dtype(acc_dtype);
  auto grad_value = at::zeros(value.sizes(), acc_options);
  auto grad_locations = at::zeros(sampling_locations.sizes(), acc_options);
  auto grad_weights = at::zeros(attention_weights.sizes(), acc_options);
  const int64_t total = grad_output.numel();
  if (total > 0 && d.levels * d.points > 0) {
    const int segment = std::gcd(static_cast<int>(d.channels % kWarp), kWarp);
    const auto stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::kHalf, at::kBFloat16, value.scalar_type(), "ms_deform_attn_backward_cuda", [&] {
          using acc_t = at::opmath_type<scalar_t>;
          backward_kernel<scalar_t, acc_t><<<num_blocks(total), kThreads, 0, stream>>>(
              grad_output.const_data_ptr<scalar_t>(), value.const_data_ptr<scalar_t>(),
              spatial_shapes.const_data_ptr<int64_t>(),
              level_start_index.const_data_ptr<int64_t>(),
              sampling_locations.const_data_ptr<scalar_t>(),
              attention_weights.const_data_ptr<scalar_t>(),
              grad_value.mutable_data_ptr<acc_t>(), grad_locations.mutable_data_ptr<acc_t>(),
              grad_weights.mutable_data_ptr<acc_t>(), d, total, segment);
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        });
  }
  const auto dtype = value.scalar_type();
  return {grad_value.to(dtype), grad_locations.to(dtype), grad_weights.to(dtype)};
}

}  // namespace mask2former::msda
