// CPU kernels for multi-scale deformable attention (see ../ms_deform_attn.h for shapes).
//
// Forward: at::parallel_for over the N * Lq queries; each query writes its own output row.
// On CPUs with AVX-512 an intrinsics version runs (bilinear set-up 16 samples at a time, rows
// of the next query prefetched into L2 while this one accumulates); it reads bfloat16 /
// float16 value rows in place. Elsewhere the portable loops below run.
// Backward: at::parallel_for over the N * M (batch, head) pairs. A pair owns the value rows
// value[n, :, m, :] exclusively, so grad_value is accumulated without atomics (in a packed
// per-thread copy of that head's rows, written back once), and every
// grad_sampling_locations / grad_attention_weights entry has one writer.
// The portable channel loops are written so that the compiler vectorises them.
#include "../ms_deform_attn.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros_like.h>
#include <c10/util/irange.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string_view>
#include <type_traits>
#include <vector>

// x86_64 Linux + GCC: the hot loops are also compiled for x86-64-v3 (AVX2 + FMA) and picked
// at load time (ifunc), so one build is fast on new CPUs and still runs on any x86_64.
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
#define MSDA_TARGET_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define MSDA_TARGET_CLONES
#endif

// x86_64 + GCC / Clang: an AVX-512 forward (intrinsics in functions compiled for AVX-512 only),
// chosen at run time when the CPU has it, so the build stays portable.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define MSDA_HAVE_AVX512 1
#define MSDA_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma")))
#else
#define MSDA_HAVE_AVX512 0
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

// Loads a value row into the cache ahead of use (the gathers are latency-bound). `locality`
// as __builtin_prefetch's: 3 into L1 (used right after), 2 into L2 (used a query later: L1
// is too small for a query's 96 * 4 rows, and rows M * D apart alias onto few of its sets).
template <int locality = 3, typename T>
inline void prefetch_row(const T* row, int64_t channels) {
#if defined(__GNUC__)
  const char* bytes = reinterpret_cast<const char*>(row);
  const int64_t size = channels * static_cast<int64_t>(sizeof(T));
  for (int64_t offset = 0; offset < size; offset += 64) {
    __builtin_prefetch(bytes + offset, 0, locality);
  }
#endif
}

template <typename V, typename T>
struct ForwardArgs {
  const V* value;
  const int64_t* shapes;
  const int64_t* starts;
  const T* locations;
  const T* weights;
  T* output;
  Dims d;
};

// Queries [begin, end) of the flattened N * Lq. Portable path: value rows of type V,
// everything else (and the accumulation) in T.
template <typename V, typename T>
MSDA_TARGET_CLONES void forward_range(const ForwardArgs<V, T>& args, int64_t begin, int64_t end) {
  const auto& [value, shapes, starts, locations, weights, output, d] = args;
  const int64_t row_stride = d.heads * d.channels;  // between consecutive keys
  const int64_t lp = d.levels * d.points;
  const int64_t samples_per_query = d.heads * lp;
  const std::vector<V> zeros(d.channels, V(0));
  // Per query: first resolve every (head, level, point) sample to rows + weights and
  // prefetch the rows, then accumulate, so the row loads overlap instead of queueing.
  std::vector<const V*> rows(4 * samples_per_query);
  std::vector<T> row_weights(4 * samples_per_query);
  std::vector<int64_t> head_end(d.heads);
  std::vector<T> upcast(std::is_same_v<V, T> ? 0 : 4 * d.channels);
  Bilinear<T> b;
  for (int64_t nq = begin; nq < end; ++nq) {
    const V* value_n = value + (nq / d.queries) * d.keys * row_stride;
    int64_t count = 0;
    for (const auto m : c10::irange(d.heads)) {
      const int64_t item = nq * d.heads + m;
      const T* loc = locations + item * lp * 2;
      const T* attn = weights + item * lp;
      for (const auto l : c10::irange(d.levels)) {
        const int64_t height = shapes[2 * l], width = shapes[2 * l + 1];
        const V* value_l = value_n + starts[l] * row_stride + m * d.channels;
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
        const V* const* r = rows.data() + 4 * sample;
        const T* w = row_weights.data() + 4 * sample;
        if constexpr (std::is_same_v<V, T>) {
          gather4(out, r[0], r[1], r[2], r[3], w, d.channels);
        } else {
          // Upcast the four rows first: gather4<T> then does exactly the float arithmetic
          // (the compiler contracts a converting loop differently).
          for (const int k : c10::irange(4)) {
            std::transform(r[k], r[k] + d.channels, upcast.begin() + k * d.channels, [](V x) {
              return static_cast<T>(x);
            });
          }
          const T* u = upcast.data();
          gather4(out, u, u + d.channels, u + 2 * d.channels, u + 3 * d.channels, w, d.channels);
        }
      }
    }
  }
}

#if MSDA_HAVE_AVX512
// AVX-512 forward for float32 accumulation: 16 samples at a time through the bilinear set-up,
// 16 channels at a time through the gathers. Same float operations, in the same order, as
// forward_range's x86-64-v3 clone (GCC contracts `loc * W - 0.5` and the four-corner sum into
// the FMAs written out here), so both paths give the same bits.
constexpr int64_t kLanes = 16;

// Per-sample constants of one query's samples s = (m * L + l) * P + p.
struct SampleTable {
  std::vector<float> width, height;  // W_l, H_l
  std::vector<int32_t> iwidth, iheight;
  std::vector<int64_t> base;  // starts[l] * row_stride + m * D, in elements
  std::vector<int64_t> lower_row;  // W_l * row_stride: from corner row y0 to y0 + 1

  SampleTable(const int64_t* shapes, const int64_t* starts, const Dims& d) {
    const int64_t samples = d.heads * d.levels * d.points;
    const int64_t padded = (samples + kLanes - 1) / kLanes * kLanes;
    const int64_t row_stride = d.heads * d.channels;
    width.assign(padded, 1.0f);
    height.assign(padded, 1.0f);
    iwidth.assign(padded, 1);
    iheight.assign(padded, 1);
    base.assign(padded, 0);
    lower_row.assign(padded, 0);
    int64_t s = 0;
    for (const auto m : c10::irange(d.heads)) {
      for (const auto l : c10::irange(d.levels)) {
        for ([[maybe_unused]] const auto p : c10::irange(d.points)) {
          height[s] = static_cast<float>(shapes[2 * l]);
          width[s] = static_cast<float>(shapes[2 * l + 1]);
          iheight[s] = static_cast<int32_t>(shapes[2 * l]);
          iwidth[s] = static_cast<int32_t>(shapes[2 * l + 1]);
          base[s] = starts[l] * row_stride + m * d.channels;
          lower_row[s] = shapes[2 * l + 1] * row_stride;
          ++s;
        }
      }
    }
  }
};

// 16 channels of a value row as float32 (exact conversion), lanes outside `mask` zero.
template <typename V>
MSDA_AVX512 inline __m512 load16(const V* row, __mmask16 mask) {
  if constexpr (std::is_same_v<V, float>) {
    return _mm512_maskz_loadu_ps(mask, row);
  } else {
    const __m256i bits = _mm256_maskz_loadu_epi16(mask, row);
    if constexpr (std::is_same_v<V, c10::BFloat16>) {
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
    } else {
      return _mm512_cvtph_ps(bits);
    }
  }
}

// Row pointers (as integers) of one corner for 16 samples: `offset` elements past value_n,
// or the zero row where `inside` is false.
MSDA_AVX512 inline void store_rows(
    int64_t* dst, __m512i offset_lo, __m512i offset_hi, __mmask16 inside, int64_t value_n,
    int64_t zero_row, int64_t element_size) {
  const __m512i scale = _mm512_set1_epi64(element_size);
  const __m512i origin = _mm512_set1_epi64(value_n);
  const __m512i zero = _mm512_set1_epi64(zero_row);
  const __m512i lo = _mm512_add_epi64(origin, _mm512_mullo_epi64(offset_lo, scale));
  const __m512i hi = _mm512_add_epi64(origin, _mm512_mullo_epi64(offset_hi, scale));
  _mm512_storeu_si512(dst, _mm512_mask_mov_epi64(zero, static_cast<__mmask8>(inside), lo));
  _mm512_storeu_si512(
      dst + 8, _mm512_mask_mov_epi64(zero, static_cast<__mmask8>(inside >> 8), hi));
}

// Accumulates `count` samples into out[0, channels): per sample
// t = w1 * r1; t += w0 * r0; t += w2 * r2; t += w3 * r3 (FMAs); out += t.
template <typename V>
MSDA_AVX512 inline void gather_head(
    float* out,
    const int64_t* const rows[4],
    const float* const w[4],
    int64_t count,
    int64_t channels) {
  int64_t c = 0;
  for (; c + 2 * kLanes <= channels; c += 2 * kLanes) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    for (int64_t s = 0; s < count; ++s) {
      const V* r0 = reinterpret_cast<const V*>(rows[0][s]) + c;
      const V* r1 = reinterpret_cast<const V*>(rows[1][s]) + c;
      const V* r2 = reinterpret_cast<const V*>(rows[2][s]) + c;
      const V* r3 = reinterpret_cast<const V*>(rows[3][s]) + c;
      const __m512 w0 = _mm512_set1_ps(w[0][s]), w1 = _mm512_set1_ps(w[1][s]);
      const __m512 w2 = _mm512_set1_ps(w[2][s]), w3 = _mm512_set1_ps(w[3][s]);
      __m512 t0 = _mm512_mul_ps(w1, load16(r1, 0xFFFF));
      __m512 t1 = _mm512_mul_ps(w1, load16(r1 + kLanes, 0xFFFF));
      t0 = _mm512_fmadd_ps(w0, load16(r0, 0xFFFF), t0);
      t1 = _mm512_fmadd_ps(w0, load16(r0 + kLanes, 0xFFFF), t1);
      t0 = _mm512_fmadd_ps(w2, load16(r2, 0xFFFF), t0);
      t1 = _mm512_fmadd_ps(w2, load16(r2 + kLanes, 0xFFFF), t1);
      t0 = _mm512_fmadd_ps(w3, load16(r3, 0xFFFF), t0);
      t1 = _mm512_fmadd_ps(w3, load16(r3 + kLanes, 0xFFFF), t1);
      acc0 = _mm512_add_ps(acc0, t0);
      acc1 = _mm512_add_ps(acc1, t1);
    }
    _mm512_storeu_ps(out + c, acc0);
    _mm512_storeu_ps(out + c + kLanes, acc1);
  }
  for (; c < channels; c += kLanes) {
    const int64_t left = std::min(kLanes, channels - c);
    const __mmask16 mask = static_cast<__mmask16>((1u << left) - 1);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t s = 0; s < count; ++s) {
      __m512 t = _mm512_mul_ps(
          _mm512_set1_ps(w[1][s]), load16(reinterpret_cast<const V*>(rows[1][s]) + c, mask));
      for (const int k : {0, 2, 3}) {
        t = _mm512_fmadd_ps(
            _mm512_set1_ps(w[k][s]), load16(reinterpret_cast<const V*>(rows[k][s]) + c, mask),
            t);
      }
      acc = _mm512_add_ps(acc, t);
    }
    _mm512_mask_storeu_ps(out + c, mask, acc);
  }
}

// Resolves the samples of query nq to corner row pointers and weights: buffer[k * padded + s]
// for corner k of sample s (structure of arrays).
template <typename V>
MSDA_AVX512 void resolve_query(
    const ForwardArgs<V, float>& args,
    const SampleTable& table,
    int64_t nq,
    int64_t zero_row,
    int64_t* row_buffer,
    float* weight_buffer) {
  const Dims& d = args.d;
  const int64_t row_stride = d.heads * d.channels;
  const int64_t samples = d.heads * d.levels * d.points;
  const int64_t padded = (samples + kLanes - 1) / kLanes * kLanes;
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512 one = _mm512_set1_ps(1.0f), half = _mm512_set1_ps(0.5f);
  const __m512 minus_one = _mm512_set1_ps(-1.0f);
  const __m512i zero_i = _mm512_setzero_si512(), one_i = _mm512_set1_epi32(1);
  const __m512i row_stride_v = _mm512_set1_epi64(row_stride);
  const auto value_n =
      reinterpret_cast<int64_t>(args.value + (nq / d.queries) * d.keys * row_stride);
  const float* loc = args.locations + nq * samples * 2;
  const float* attn = args.weights + nq * samples;
  for (int64_t s = 0; s < samples; s += kLanes) {
    const int64_t n = std::min(kLanes, samples - s);
    const auto live = static_cast<__mmask16>((1u << n) - 1);
    const auto first = static_cast<__mmask16>(n >= 8 ? 0xFFFF : (1u << (2 * n)) - 1);
    const auto second = static_cast<__mmask16>(n > 8 ? (1u << (2 * n - 16)) - 1 : 0);
    const __m512 xy0 = _mm512_maskz_loadu_ps(first, loc + 2 * s);
    const __m512 xy1 = _mm512_maskz_loadu_ps(second, loc + 2 * s + kLanes);
    const __m512 width = _mm512_loadu_ps(table.width.data() + s);
    const __m512 height = _mm512_loadu_ps(table.height.data() + s);
    // Pixel coordinates as grid_sample(align_corners=False): x = loc_x * W - 0.5.
    const __m512 x = _mm512_fmsub_ps(_mm512_permutex2var_ps(xy0, even, xy1), width, half);
    const __m512 y = _mm512_fmsub_ps(_mm512_permutex2var_ps(xy0, odd, xy1), height, half);
    // Ordered compares: NaN coordinates are not valid.
    const __mmask16 valid = live & _mm512_cmp_ps_mask(x, minus_one, _CMP_GE_OQ) &
        _mm512_cmp_ps_mask(y, minus_one, _CMP_GE_OQ) &
        _mm512_cmp_ps_mask(x, width, _CMP_LT_OQ) & _mm512_cmp_ps_mask(y, height, _CMP_LT_OQ);
    const __m512 x0f = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    const __m512 y0f = _mm512_roundscale_ps(y, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    const __m512 fx = _mm512_sub_ps(x, x0f), fy = _mm512_sub_ps(y, y0f);
    // Invalid lanes may hold anything here: every use below is masked by `valid`.
    const __m512i x0 = _mm512_maskz_cvttps_epi32(valid, x0f);
    const __m512i y0 = _mm512_maskz_cvttps_epi32(valid, y0f);
    const __mmask16 in_x0 = _mm512_cmpge_epi32_mask(x0, zero_i);
    const __mmask16 in_x1 = _mm512_cmplt_epi32_mask(
        _mm512_add_epi32(x0, one_i), _mm512_loadu_si512(table.iwidth.data() + s));
    const __mmask16 in_y0 = valid & _mm512_cmpge_epi32_mask(y0, zero_i);
    const __mmask16 in_y1 = valid &
        _mm512_cmplt_epi32_mask(
            _mm512_add_epi32(y0, one_i), _mm512_loadu_si512(table.iheight.data() + s));
    const __mmask16 inside[4] = {
        static_cast<__mmask16>(in_y0 & in_x0), static_cast<__mmask16>(in_y0 & in_x1),
        static_cast<__mmask16>(in_y1 & in_x0), static_cast<__mmask16>(in_y1 & in_x1)};
    const __m512 wx[2] = {_mm512_sub_ps(one, fx), fx};
    const __m512 wy[2] = {_mm512_sub_ps(one, fy), fy};
    const __m512 a = _mm512_maskz_loadu_ps(live, attn + s);
    // Corner weight (wy * wx, 0 outside the map) times the attention weight; 0 for invalid
    // samples, whose attention weight is not read (as the portable path skips them).
    for (const int k : c10::irange(4)) {
      const __m512 corner = _mm512_maskz_mul_ps(inside[k], wy[k >> 1], wx[k & 1]);
      _mm512_storeu_ps(
          weight_buffer + k * padded + s, _mm512_maskz_mul_ps(valid, corner, a));
    }
    // Element offsets of the four corner rows: base + (y0 * W + x0) * row_stride, then
    // + row_stride (x0 + 1) and + W * row_stride (y0 + 1).
    const __m512i key = _mm512_add_epi32(
        _mm512_mullo_epi32(y0, _mm512_loadu_si512(table.iwidth.data() + s)), x0);
    __m512i off_lo = _mm512_add_epi64(
        _mm512_loadu_si512(table.base.data() + s),
        _mm512_mullo_epi64(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(key)), row_stride_v));
    __m512i off_hi = _mm512_add_epi64(
        _mm512_loadu_si512(table.base.data() + s + 8),
        _mm512_mullo_epi64(
            _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(key, 1)), row_stride_v));
    const __m512i down_lo = _mm512_loadu_si512(table.lower_row.data() + s);
    const __m512i down_hi = _mm512_loadu_si512(table.lower_row.data() + s + 8);
    for (const int k : c10::irange(4)) {
      const int64_t step = (k & 1) ? row_stride : 0;
      const __m512i lo = (k >> 1) ? _mm512_add_epi64(off_lo, down_lo) : off_lo;
      const __m512i hi = (k >> 1) ? _mm512_add_epi64(off_hi, down_hi) : off_hi;
      store_rows(
          row_buffer + k * padded + s, _mm512_add_epi64(lo, _mm512_set1_epi64(step)),
          _mm512_add_epi64(hi, _mm512_set1_epi64(step)), inside[k], value_n, zero_row,
          sizeof(V));
    }
  }
}

// How many queries ahead the rows are resolved and prefetched (2 and 4 measured no faster:
// one query's accumulation already covers the L3 latency).
constexpr int64_t kAhead = 1;

template <typename V>
MSDA_AVX512 void forward_range_avx512(
    const ForwardArgs<V, float>& args, const SampleTable& table, int64_t begin, int64_t end) {
  const Dims& d = args.d;
  const int64_t lp = d.levels * d.points;
  const int64_t samples = d.heads * lp;
  const int64_t padded = (samples + kLanes - 1) / kLanes * kLanes;
  const std::vector<V> zeros(d.channels, V(0));
  const auto zero_row = reinterpret_cast<int64_t>(zeros.data());
  // A ring of kAhead + 1 buffer sets: query nq + kAhead is resolved and its rows prefetched
  // into L2 before query nq is accumulated, so the row loads have time to arrive.
  std::vector<int64_t> row_buffers((kAhead + 1) * 4 * padded);
  std::vector<float> weight_buffers((kAhead + 1) * 4 * padded);
  const auto resolve = [&](int64_t nq) {
    const int64_t slot = (nq - begin) % (kAhead + 1) * 4 * padded;
    resolve_query(
        args, table, nq, zero_row, row_buffers.data() + slot, weight_buffers.data() + slot);
    for (int64_t i = slot; i < slot + 4 * padded; ++i) {
      prefetch_row<2>(reinterpret_cast<const V*>(row_buffers[i]), d.channels);
    }
  };
  for (int64_t nq = begin; nq < std::min(end, begin + kAhead); ++nq) {
    resolve(nq);
  }
  for (int64_t nq = begin; nq < end; ++nq) {
    if (nq + kAhead < end) {
      resolve(nq + kAhead);
    }
    const int64_t slot = (nq - begin) % (kAhead + 1) * 4 * padded;
    for (const auto m : c10::irange(d.heads)) {
      const int64_t first = slot + m * lp;
      const int64_t* rows[4];
      const float* w[4];
      for (const int k : c10::irange(4)) {
        rows[k] = row_buffers.data() + k * padded + first;
        w[k] = weight_buffers.data() + k * padded + first;
      }
      gather_head<V>(args.output + (nq * d.heads + m) * d.channels, rows, w, lp, d.channels);
    }
  }
}

bool avx512_available() {
  static const bool available = __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl");
  return available;
}
#endif

// The AVX-512 forward runs when the CPU has it, unless MASK2FORMER_MSDA_CPU_KERNEL=portable
// (read on every call, so tests can compare the two paths in one process).
bool use_avx512_forward() {
#if MSDA_HAVE_AVX512
  const char* choice = std::getenv("MASK2FORMER_MSDA_CPU_KERNEL");
  return avx512_available() && !(choice != nullptr && std::string_view(choice) == "portable");
#else
  return false;
#endif
}

// Runs the forward over all queries: value rows read as V, float32 (T) everything else.
template <typename V, typename T>
void run_forward(const ForwardArgs<V, T>& args) {
  const Dims& d = args.d;
  // ~ a few hundred bilinear samples per task keeps scheduling overhead negligible.
  const int64_t grain =
      std::max<int64_t>(1, 256 / std::max<int64_t>(1, d.heads * d.levels * d.points));
#if MSDA_HAVE_AVX512
  // Key indices inside a level are int32 in the AVX-512 set-up.
  if constexpr (std::is_same_v<T, float>) {
    if (d.keys <= std::numeric_limits<int32_t>::max() && use_avx512_forward()) {
      const SampleTable table(args.shapes, args.starts, d);
      at::parallel_for(0, d.batch * d.queries, grain, [&](int64_t begin, int64_t end) {
        forward_range_avx512<V>(args, table, begin, end);
      });
      return;
    }
  }
#endif
  at::parallel_for(0, d.batch * d.queries, grain, [&](int64_t begin, int64_t end) {
    forward_range(args, begin, end);
  });
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

// bfloat16 / float16: the forward reads the value rows in place, the backward upcasts;
// both accumulate in float32.
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
  const Dims d = dims_of(value, sampling_locations);
  const auto value_type = value.scalar_type();
  if (!needs_upcast(value)) {
    auto output = at::empty({d.batch, d.queries, d.heads * d.channels}, value.options());
    if (output.numel() == 0) {
      return output.zero_();
    }
    AT_DISPATCH_FLOATING_TYPES(value_type, "ms_deform_attn_forward_cpu", [&] {
      run_forward(ForwardArgs<scalar_t, scalar_t>{
          value.const_data_ptr<scalar_t>(),
          spatial_shapes.const_data_ptr<int64_t>(),
          level_start_index.const_data_ptr<int64_t>(),
          sampling_locations.const_data_ptr<scalar_t>(),
          attention_weights.const_data_ptr<scalar_t>(),
          output.mutable_data_ptr<scalar_t>(),
          d});
    });
    return output;
  }
  // A bfloat16 / float16 value is read in place (no float32 copy); locations, weights and the
  // accumulation are float32, and so is the output when the locations came in float32.
  // With all inputs in the reduced dtype the output is rounded to it once, at the end.
  const auto locations = sampling_locations.to(at::kFloat);
  const auto weights = attention_weights.to(at::kFloat);
  auto output =
      at::empty({d.batch, d.queries, d.heads * d.channels}, value.options().dtype(at::kFloat));
  if (output.numel() != 0) {
    AT_DISPATCH_REDUCED_FLOATING_TYPES(value_type, "ms_deform_attn_forward_cpu", [&] {
      run_forward(ForwardArgs<scalar_t, float>{
          value.const_data_ptr<scalar_t>(),
          spatial_shapes.const_data_ptr<int64_t>(),
          level_start_index.const_data_ptr<int64_t>(),
          locations.const_data_ptr<float>(),
          weights.const_data_ptr<float>(),
          output.mutable_data_ptr<float>(),
          d});
    });
  } else {
    output.zero_();
  }
  return sampling_locations.scalar_type() == at::kFloat ? output : output.to(value_type);
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
