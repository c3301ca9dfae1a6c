// Op schemas, input validation and per-device registration of the `mask2former` custom ops:
//   mask2former::ms_deform_attn_forward   -> output
//   mask2former::ms_deform_attn_backward  -> (grad_value, grad_sampling_locations,
//                                             grad_attention_weights)
// Autograd and fake (meta) implementations are registered from Python
// (mask2former/layers/_msda_build.py).
#include "ms_deform_attn.h"

#include <c10/util/irange.h>
#include <torch/library.h>

namespace mask2former::msda {
namespace {

// Contiguous inputs with int64 shape tensors on the value's device.
struct Inputs {
  at::Tensor value, spatial_shapes, level_start_index, sampling_locations, attention_weights;
};

// `float32_ok`: a bfloat16 / float16 value may come with float32 locations and weights.
void check_float_like(
    const at::Tensor& t, const at::Tensor& value, const char* name, bool float32_ok = false) {
  const auto dtype = value.scalar_type();
  const bool reduced_value = dtype == at::kBFloat16 || dtype == at::kHalf;
  TORCH_CHECK(
      t.scalar_type() == dtype || (float32_ok && reduced_value && t.scalar_type() == at::kFloat),
      "ms_deform_attn: ", name, " has dtype ", t.scalar_type(), " but value has dtype ", dtype,
      float32_ok && reduced_value ? "; it must be that dtype or float32"
                                  : "; all floating inputs must share one dtype");
  TORCH_CHECK(
      t.device() == value.device(), "ms_deform_attn: ", name, " is on ", t.device(),
      " but value is on ", value.device());
}

// Levels must tile S exactly; only checked when the shapes live on the CPU (no device sync).
void check_levels(const at::Tensor& shapes, const at::Tensor& starts, int64_t num_keys) {
  if (!shapes.device().is_cpu() || !starts.device().is_cpu()) {
    return;
  }
  const auto shapes_cpu = shapes.to(at::kLong).contiguous();
  const auto starts_cpu = starts.to(at::kLong).contiguous();
  const int64_t* hw = shapes_cpu.const_data_ptr<int64_t>();
  const int64_t* start = starts_cpu.const_data_ptr<int64_t>();
  int64_t offset = 0;
  for (const auto l : c10::irange(shapes_cpu.size(0))) {
    TORCH_CHECK(
        hw[2 * l] > 0 && hw[2 * l + 1] > 0, "ms_deform_attn: spatial_shapes[", l, "] = (",
        hw[2 * l], ", ", hw[2 * l + 1], ") must be positive");
    TORCH_CHECK(
        start[l] == offset, "ms_deform_attn: level_start_index[", l, "] = ", start[l],
        " but the preceding levels of spatial_shapes end at ", offset);
    offset += hw[2 * l] * hw[2 * l + 1];
  }
  TORCH_CHECK(
      offset == num_keys, "ms_deform_attn: value has S = ", num_keys,
      " keys but spatial_shapes covers sum(H*W) = ", offset);
}

Inputs prepare(
    const at::Tensor& value,
    const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index,
    const at::Tensor& sampling_locations,
    const at::Tensor& attention_weights,
    bool mixed_ok = false) {
  TORCH_CHECK(
      value.dim() == 4, "ms_deform_attn: value must be (N, S, heads, dim), got ", value.sizes());
  TORCH_CHECK(
      at::isFloatingType(value.scalar_type()), "ms_deform_attn: value must be floating, got ",
      value.scalar_type());
  TORCH_CHECK(
      spatial_shapes.dim() == 2 && spatial_shapes.size(1) == 2,
      "ms_deform_attn: spatial_shapes must be (L, 2), got ", spatial_shapes.sizes());
  TORCH_CHECK(
      !at::isFloatingType(spatial_shapes.scalar_type()) &&
          !at::isFloatingType(level_start_index.scalar_type()),
      "ms_deform_attn: spatial_shapes and level_start_index must be integer tensors");
  const int64_t batch = value.size(0);
  const int64_t heads = value.size(2);
  const int64_t levels = spatial_shapes.size(0);
  TORCH_CHECK(
      level_start_index.dim() == 1 && level_start_index.size(0) == levels,
      "ms_deform_attn: level_start_index must be (L,) = (", levels, ",), got ",
      level_start_index.sizes());
  TORCH_CHECK(
      sampling_locations.dim() == 6 && sampling_locations.size(0) == batch &&
          sampling_locations.size(2) == heads && sampling_locations.size(3) == levels &&
          sampling_locations.size(5) == 2,
      "ms_deform_attn: sampling_locations must be (N, Lq, heads, L, P, 2) with N = ", batch,
      ", heads = ", heads, ", L = ", levels, ", got ", sampling_locations.sizes());
  const auto loc = sampling_locations.sizes();
  TORCH_CHECK(
      attention_weights.dim() == 5 &&
          attention_weights.sizes() == at::IntArrayRef(loc.data(), 5),
      "ms_deform_attn: attention_weights must be (N, Lq, heads, L, P) = ",
      at::IntArrayRef(loc.data(), 5), ", got ", attention_weights.sizes());
  check_float_like(sampling_locations, value, "sampling_locations", mixed_ok);
  check_float_like(attention_weights, value, "attention_weights", mixed_ok);
  TORCH_CHECK(
      attention_weights.scalar_type() == sampling_locations.scalar_type(),
      "ms_deform_attn: attention_weights has dtype ", attention_weights.scalar_type(),
      " but sampling_locations has dtype ", sampling_locations.scalar_type());
  check_levels(spatial_shapes, level_start_index, value.size(1));
  const auto index_options = value.options().dtype(at::kLong);
  return {
      value.contiguous(),
      spatial_shapes.to(index_options).contiguous(),
      level_start_index.to(index_options).contiguous(),
      sampling_locations.contiguous(),
      attention_weights.contiguous()};
}

// Checks and normalises the inputs, then runs the device kernel given as template argument;
// `mixed_ok`: the kernel takes a 16-bit value with float32 locations and weights.
template <auto fn, bool mixed_ok = false>
at::Tensor forward_checked(
    const at::Tensor& value,
    const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index,
    const at::Tensor& sampling_locations,
    const at::Tensor& attention_weights) {
  const Inputs in = prepare(
      value, spatial_shapes, level_start_index, sampling_locations, attention_weights, mixed_ok);
  return fn(
      in.value, in.spatial_shapes, in.level_start_index, in.sampling_locations,
      in.attention_weights);
}

template <auto fn>
std::tuple<at::Tensor, at::Tensor, at::Tensor> backward_checked(
    const at::Tensor& grad_output,
    const at::Tensor& value,
    const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index,
    const at::Tensor& sampling_locations,
    const at::Tensor& attention_weights) {
  const Inputs in = prepare(
      value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
  const auto& v = in.value;
  const std::vector<int64_t> out_shape{
      v.size(0), in.sampling_locations.size(1), v.size(2) * v.size(3)};
  TORCH_CHECK(
      grad_output.sizes() == at::IntArrayRef(out_shape),
      "ms_deform_attn backward: grad_output must be ", at::IntArrayRef(out_shape), ", got ",
      grad_output.sizes());
  check_float_like(grad_output, v, "grad_output");
  return fn(
      grad_output.contiguous(), v, in.spatial_shapes, in.level_start_index,
      in.sampling_locations, in.attention_weights);
}

}  // namespace

TORCH_LIBRARY(mask2former, m) {
  m.def(
      "ms_deform_attn_forward(Tensor value, Tensor spatial_shapes, Tensor level_start_index, "
      "Tensor sampling_locations, Tensor attention_weights) -> Tensor");
  m.def(
      "ms_deform_attn_backward(Tensor grad_output, Tensor value, Tensor spatial_shapes, "
      "Tensor level_start_index, Tensor sampling_locations, Tensor attention_weights) "
      "-> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(mask2former, CPU, m) {
  m.impl("ms_deform_attn_forward", &forward_checked<forward_cpu, true>);
  m.impl("ms_deform_attn_backward", &backward_checked<backward_cpu>);
}

#ifdef MSDA_WITH_CUDA
TORCH_LIBRARY_IMPL(mask2former, CUDA, m) {
  m.impl("ms_deform_attn_forward", &forward_checked<forward_cuda>);
  m.impl("ms_deform_attn_backward", &backward_checked<backward_cuda>);
}
#endif

}  // namespace mask2former::msda
