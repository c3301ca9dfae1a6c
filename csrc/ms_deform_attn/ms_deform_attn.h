// Multi-scale deformable attention: kernel entry points shared by the op registration
// (ms_deform_attn.cpp) and the device implementations (cpu/, cuda/).
//
// Shapes (all tensors contiguous, validated by the caller):
//   value               (N, S, M, D)      S = sum_l H_l * W_l, M heads, D channels per head
//   spatial_shapes      (L, 2) int64      (H_l, W_l)
//   level_start_index   (L,) int64        offset of level l inside S
//   sampling_locations  (N, Lq, M, L, P, 2) normalised (x, y); pixel = loc * size - 0.5
//   attention_weights   (N, Lq, M, L, P)
//   output              (N, Lq, M * D)
// Sampling is bilinear with zero padding, i.e. grid_sample(align_corners=False).
// Floating inputs share one dtype, except that the CPU forward also takes a bfloat16 / float16
// value with float32 locations and weights; its output is then float32.
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

namespace mask2former::msda {

at::Tensor forward_cpu(
    const at::Tensor& value,
    const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index,
    const at::Tensor& sampling_locations,
    const at::Tensor& attention_weights);

// Returns (grad_value, grad_sampling_locations, grad_attention_weights).
std::tuple<at::Tensor, at::Tensor, at::Tensor> backward_cpu(
    const at::Tensor& grad_output,
    const at::Tensor& value,
    const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index,
    const at::Tensor& sampling_locations,
    const at::Tensor& attention_weights);

#ifdef MSDA_WITH_CUDA
at::Tensor forward_cuda(
    const at::Tensor& value,
    const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index,
    const at::Tensor& sampling_locations,
    const at::Tensor& attention_weights);

std::tuple<at::Tensor, at::Tensor, at::Tensor> backward_cuda(
    const at::Tensor& grad_output,
    const at::Tensor& value,
    const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index,
    const at::Tensor& sampling_locations,
    const at::Tensor& attention_weights);
#endif

}  // namespace mask2former::msda
