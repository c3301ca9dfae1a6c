// CPU kernels for multi-scale deformable attention (see ../ms_deform_attn.h for shapes).
//
// Forward: at::parallel_for over the N * Lq queries; each query writes its own output row.
// Backward: at::parallel_for over the N * M (batch, head) pairs. A pair owns the value rows
// value[n, :, m, :] exclusively, so grad_value is accumulated without atomics (in a packed
// per-thread copy of that head's rows, written back once), and every
// grad_sampling_locations / grad_attention_weights entry has one writer.
// The channel loops are written so that the compiler vectorises them (no intrinsics, so the
// source is portable).
#include "../ms_deform_attn.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros_like.h>
#include <c10/util/irange.h>

#include <algorithm>
#include <cmath>
#include <vector>

// x86_64 Linux + GCC: the hot loops are also compiled for x86-64-v3 (AVX2 + FMA) and picked
// at load time (ifunc), so one build is fast on new CPUs and still runs on any x86_64.
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
#define MSDA_TARGET_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define MSDA_TARGET_CLONES
#endif

namespace mask2former::msda {
namespace {

struct Dims {
  int64_t batch, keys, heads, channels, queries, levels, points;
};

Dims dims_of(const at::Tensor& value, const at::Tensor& sampling_locations) {
  return {value.size(0), value.size(1), value.size(2), value.size(3),
          sampling_locations.size(1), sampling_locations.size(3), sampling_locations.size(4)};
}

// Bilinear neighbourhood of one sampling point: corners (y0,x0), (y0,x1), (y1,x0), (y1,x1).
template <typename T>
struct Bilinear {
  T fx, fy;        // fractional position inside the cell
  int64_t key[4];  // key index inside the level, -1 when the corner lies outside the map
  T weight[4];     // bilinear weight, 0 for corners outside
};

// Pixel coordinates follow grid_sample(align_corners=False): x = loc_x * W - 0.5.
// Returns false when no corner lies inside the map (the sample is exactly zero).
template <typename T>
inline bool bilinear(T loc_x, T loc_y, int64_t height, int64_t width, Bilinear<T>& b) {
  const T x = loc_x * static_cast<T>(width) - T(0.5);
  const T y = loc_y * static_cast<T>(height) - T(0.5);
  // Also rejects NaN coordinates.
  if (!(x >= T(-1) && y >= T(-1) && x < static_cast<T>(width) && y < static_cast<T>(height))) {
    return false;
  }
  const T x0f = std::floor(x);
  const T y0f = std::floor(y);
  const int64_t x0 = static_cast<int64_t>(x0f);
  const int64_t y0 = static_cast<int64_t>(y0f);
  b.fx = x - x0f;
  b.fy = y - y0f;
  const bool in_x0 = x0 >= 0, in_x1 = x0 + 1 < width;
  const bool in_y0 = y0 >= 0, in_y1 = y0 + 1 < height;
  const bool inside[4] = {in_y0 && in_x0, in_y0 && in_x1, in_y1 && in_x0, in_y1 && in_x1};
  const T wx[2] = {T(1) - b.fx, b.fx};
  const T wy[2] = {T(1) - b.fy, b.fy};
  for (const int k : c10::irange(4)) {
    const int64_t dy = k >> 1, dx = k & 1;
    b.key[k] = inside[k] ? (y0 + dy) * width + x0 + dx : -1;
    b.weight[k] = inside[k] ? wy[dy] * wx[dx] : T(0);
  }
  return true;
}

// out[c] += sum_k w[k] * rows[k][c]
template <typename T>
inline void gather4(
    T* __restrict__ out,
    const T* __restrict__ v0,
    const T* __restrict__ v1,
    const T* __restrict__ v2,
    const T* __restrict__ v3,
    const T w[4],
    int64_t channels) {
  const T w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
  for (int64_t c = 0; c < channels; ++c) {
    out[c] += w0 * v0[c] + w1 * v1[c] + w2 * v2[c] + w3 * v3[c];
  }
}

// dots[k] = <grad, rows[k]> and grad_rows[k] += scale[k] * grad, in one pass over channels.
// Partial sums are kept per lane of a block so the reductions vectorise without -ffast-math.
template <typename T>
inline void scatter4(
    const T* __restrict__ grad,
    const T* __restrict__ v0,
    const T* __restrict__ v1,
    const T* __restrict__ v2,
    const T* __restrict__ v3,
    T* __restrict__ g0,
    T* __restrict__ g1,
    T* __restrict__ g2,
    T* __restrict__ g3,
    const T scale[4],
    T dots[4],
    int64_t channels) {
  constexpr int64_t kLanes = 8;
  T a0[kLanes] = {}, a1[kLanes] = {}, a2[kLanes] = {}, a3[kLanes] = {};
  const T s0 = scale[0], s1 = scale[1], s2 = scale[2], s3 = scale[3];
  int64_t c = 0;
  for (; c + kLanes <= channels; c += kLanes) {
    for (int64_t j = 0; j < kLanes; ++j) {
      const T g = grad[c + j];
      a0[j] += g * v0[c + j];
      a1[j] += g * v1[c + j];
      a2[j] += g * v2[c + j];
      a3[j] += g * v3[c + j];
      g0[c + j] += s0 * g;
      g1[c + j] += s1 * g;
      g2[c + j] += s2 * g;
      g3[c + j] += s3 * g;
    }
  }
  for (; c < channels; ++c) {
    const T g = grad[c];
    a0[0] += g * v0[c];
    a1[0] += g * v1[c];
    a2[0] += g * v2[c];
    a3[0] += g * v3[c];
    g0[c] += s0 * g;
    g1[c] += s1 * g;
    g2[c] += s2 * g;
    g3[c] += s3 * g;
  }
  T d[4] = {};
  for (int64_t j = 0; j < kLanes; ++j) {
    d[0] += a0[j];
    d[1] += a1[j];
    d[2] += a2[j];
    d[3] += a3[j];
  }
  for (const int k : c10::irange(4)) {
    dots[k] = d[k];
  }
}

// Loads the start of a value row into the cache ahead of use (the gathers are latency-bound).
template <typename T>
inline void prefetch_row(const T* row, int64_t channels) {
#if defined(__GNUC__)
  const char* bytes = reinterpret_cast<const char*>(row);
  const int64_t size = channels * static_cast<int64_t>(sizeof(T));
  for (int64_t offset = 0; offset < size; offset += 64) {
    __builtin_prefetch(bytes + offset);
  }
#endif
}

template <typename T>
struct ForwardArgs {
  const T* value;
  const int64_t* shapes;
  const int64_t* starts;
  const T* locations;
  const T* weights;
  T* output;
  Dims d;
};

// Queries [begin, end) of the flattened N * Lq.
template <typename T>
MSDA_TARGET_CLONES void forward_range(const ForwardArgs<T>& args, int64_t begin, int64_t end) {
  const auto& [value, shapes, starts, locations, weights, output, d] = args;
  const int64_t row_stride = d.heads * d.channels;  // between consecutive keys
  const int64_t lp = d.levels * d.points;
  const int64_t samples_per_query = d.heads * lp;
  const std::vector<T> zeros(d.channels, T(0));
  // Per query: first resolve every (head, level, point) sample to rows + weights and
  // prefetch the rows, then accumulate, so the row loads overlap instead of queueing.
  std::vector<const T*> rows(4 * samples_per_query);
  std::vector<T> row_weights(4 * samples_per_query);
  std::vector<int64_t> head_end(d.heads);
  Bilinear<T> b;
  for (int64_t nq = begin; nq < end; ++nq) {
    const T* value_n = value + (nq / d.queries) * d.keys * row_stride;
    int64_t count = 0;
    for (const auto m : c10::irange(d.heads)) {
      const int64_t item = nq * d.heads + m;
      const T* loc = locations + item * lp * 2;
      const T* attn = weights + item * lp;
      for (const auto l : c10::irange(d.levels)) {
        const int64_t height = shapes[2 * l], width = shapes[2 * l + 1];
        const T* value_l = value_n + starts[l] * row_stride + m * d.channels;
        for (const auto p : c10::irange(d.points)) {
          const int64_t i = l * d.points + p;
          if (!bilinear(loc[2 * i], loc[2 * i + 1], height, width, b)) {
            continue;
          }
          for (const int k : c10::irange(4)) {
            const bool inside = b.key[k] >= 0;
            rows[4 * count + k] = inside ? value_l + b.key[k] * row_stride : zeros.data();
            row_weights[4 * count + k] = b.weight[k] * attn[i];
            if (inside) {
              prefetch_row(rows[4 * count + k], d.channels);
            }
          }
          ++count;
        }
      }
      head_end[m] = count;
    }
    int64_t sample = 0;
    for (const auto m : c10::irange(d.heads)) {
      T* out = output + (nq * d.heads + m) * d.channels;
      std::fill(out, out + d.channels, T(0));
      for (; sample < head_end[m]; ++sample) {
        const T* const* r = rows.data() + 4 * sample;
        gather4(out, r[0], r[1], r[2], r[3], row_weights.data() + 4 * sample, d.channels);
      }
    }
  }
}

template <typename T>
struct BackwardArgs {
  const T* grad_output;
  const T* value;
  const int64_t* shapes;
  const int64_t* starts;
  const T* locations;
  const T* weights;
  T* grad_value;
  T* grad_locations;
  T* grad_weights;
  Dims d;
};

// (batch, head) pairs [begin, end) of the flattened N * M.
template <typename T>
MSDA_TARGET_CLONES void backward_range(const BackwardArgs<T>& args, int64_t begin, int64_t end) {
  const auto& [grad_output, value, shapes, starts, locations, weights, grad_value,
               grad_locations, grad_weights, d] = args;
  const int64_t lp = d.levels * d.points;
  const int64_t row_stride = d.heads * d.channels;
  const int64_t slice = d.keys * d.channels;
  // One head's rows, packed: contiguous rows spread over all cache sets, whereas in place
  // they sit M * D apart and map onto a few of them. grad_value_head is written back once.
  std::vector<T> value_head(slice), grad_value_head(slice);
  const std::vector<T> zeros(d.channels, T(0));
  std::vector<T> sink(4 * d.channels);  // write target for corners outside the map
  Bilinear<T> b;
  for (int64_t nm = begin; nm < end; ++nm) {
    const int64_t n = nm / d.heads, m = nm % d.heads;
    const T* value_nm = value + n * d.keys * row_stride + m * d.channels;
    for (const auto key : c10::irange(d.keys)) {
      std::copy_n(value_nm + key * row_stride, d.channels, value_head.data() + key * d.channels);
    }
    std::fill(grad_value_head.begin(), grad_value_head.end(), T(0));
    for (const auto q : c10::irange(d.queries)) {
      const int64_t item = (n * d.queries + q) * d.heads + m;
      const T* grad = grad_output + item * d.channels;
      const T* loc = locations + item * lp * 2;
      const T* attn = weights + item * lp;
      T* grad_loc = grad_locations + item * lp * 2;
      T* grad_attn = grad_weights + item * lp;
      for (const auto l : c10::irange(d.levels)) {
        const int64_t height = shapes[2 * l], width = shapes[2 * l + 1];
        const int64_t level_offset = starts[l] * d.channels;
        for (const auto p : c10::irange(d.points)) {
          const int64_t i = l * d.points + p;
          if (!bilinear(loc[2 * i], loc[2 * i + 1], height, width, b)) {
            grad_loc[2 * i] = grad_loc[2 * i + 1] = grad_attn[i] = T(0);
            continue;
          }
          const T* rows[4];
          T* grad_rows[4];
          T scale[4];
          for (const int k : c10::irange(4)) {
            const bool inside = b.key[k] >= 0;
            const int64_t offset = level_offset + b.key[k] * d.channels;
            rows[k] = inside ? value_head.data() + offset : zeros.data();
            grad_rows[k] = inside ? grad_value_head.data() + offset : sink.data() + k * d.channels;
            scale[k] = b.weight[k] * attn[i];
          }
          T dots[4];
          scatter4(
              grad, rows[0], rows[1], rows[2], rows[3], grad_rows[0], grad_rows[1],
              grad_rows[2], grad_rows[3], scale, dots, d.channels);
          grad_attn[i] = b.weight[0] * dots[0] + b.weight[1] * dots[1] +
              b.weight[2] * dots[2] + b.weight[3] * dots[3];
          // d(sample)/dx and d(sample)/dy in pixels, then chain through x = loc_x * W - 0.5.
          const T dx = (dots[1] - dots[0]) * (T(1) - b.fy) + (dots[3] - dots[2]) * b.fy;
          const T dy = (dots[2] - dots[0]) * (T(1) - b.fx) + (dots[3] - dots[1]) * b.fx;
          grad_loc[2 * i] = attn[i] * dx * static_cast<T>(width);
          grad_loc[2 * i + 1] = attn[i] * dy * static_cast<T>(height);
        }
      }
    }
    T* grad_value_nm = grad_value + n * d.keys * row_stride + m * d.channels;
    for (const auto key : c10::irange(d.keys)) {
      std::copy_n(
          grad_value_head.data() + key * d.channels, d.channels, grad_value_nm + key * row_stride);
    }
  }
}

// Reduced-precision inputs run the float kernels (accumulation in float32).
bool needs_upcast(const at::Tensor& t) {
  return t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16;
}

}  // namespace

at::Tensor forward_cpu(
    const at::Tensor& value,
    const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index,
    const at::Tensor& sampling_locations,
    const at::Tensor& attention_weights) {
  if (needs_upcast(value)) {
    return forward_cpu(
               value.to(at::kFloat), spatial_shapes, level_start_index,
               sampling_locations.to(at::kFloat), attention_weights.to(at::kFloat))
        .to(value.scalar_type());
  }
  const Dims d = dims_of(value, sampling_locations);
  auto output = at::empty({d.batch, d.queries, d.heads * d.channels}, value.options());
  if (output.numel() == 0) {
    return output.zero_();
  }
  // ~ a few hundred bilinear samples per task keeps scheduling overhead negligible.
  const int64_t grain =
      std::max<int64_t>(1, 256 / std::max<int64_t>(1, d.heads * d.levels * d.points));
  AT_DISPATCH_FLOATING_TYPES(value.scalar_type(), "ms_deform_attn_forward_cpu", [&] {
    const ForwardArgs<scalar_t> args{
        value.const_data_ptr<scalar_t>(),
        spatial_shapes.const_data_ptr<int64_t>(),
        level_start_index.const_data_ptr<int64_t>(),
        sampling_locations.const_data_ptr<scalar_t>(),
        attention_weights.const_data_ptr<scalar_t>(),
        output.mutable_data_ptr<scalar_t>(),
        d};
    at::parallel_for(0, d.batch * d.queries, grain, [&](int64_t begin, int64_t end) {
      forward_range(args, begin, end);
    });
  });
  return output;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> backward_cpu(
    const at::Tensor& grad_output,
    const at::Tensor& value,
    const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index,
    const at::Tensor& sampling_locations,
    const at::Tensor& attention_weights) {
  if (needs_upcast(value)) {
    auto [gv, gl, ga] = backward_cpu(
        grad_output.to(at::kFloat), value.to(at::kFloat), spatial_shapes, level_start_index,
        sampling_locations.to(at::kFloat), attention_weights.to(at::kFloat));
    const auto dtype = value.scalar_type();
    return {gv.to(dtype), gl.to(dtype), ga.to(dtype)};
  }
  const Dims d = dims_of(value, sampling_locations);
  if (d.batch * d.queries * d.heads * d.levels * d.points == 0 || d.channels == 0) {
    return {
        at::zeros_like(value), at::zeros_like(sampling_locations),
        at::zeros_like(attention_weights)};
  }
  // Every entry of these three is written by the kernel.
  auto grad_value = at::empty_like(value);
  auto grad_locations = at::empty_like(sampling_locations);
  auto grad_weights = at::empty_like(attention_weights);
  AT_DISPATCH_FLOATING_TYPES(value.scalar_type(), "ms_deform_attn_backward_cpu", [&] {
    const BackwardArgs<scalar_t> args{
        grad_output.const_data_ptr<scalar_t>(),
        value.const_data_ptr<scalar_t>(),
        spatial_shapes.const_data_ptr<int64_t>(),
        level_start_index.const_data_ptr<int64_t>(),
        sampling_locations.const_data_ptr<scalar_t>(),
        attention_weights.const_data_ptr<scalar_t>(),
        grad_value.mutable_data_ptr<scalar_t>(),
        grad_locations.mutable_data_ptr<scalar_t>(),
        grad_weights.mutable_data_ptr<scalar_t>(),
        d};
    at::parallel_for(0, d.batch * d.heads, 1, [&](int64_t begin, int64_t end) {
      backward_range(args, begin, end);
    });
  });
  return {grad_value, grad_locations, grad_weights};
}

}  // namespace mask2former::msda
