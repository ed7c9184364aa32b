// The int8 GEMM of model/kernel_table.h (ReducedGemm), the scheme of
// PyTorch's quantize_dynamic and ONNX Runtime's DynamicQuantizeMatMul with
// the activations' scale per column (token) rather than per tensor:
// weights quantized once per row, symmetric int8 (scale = max |w| / 127);
// each column of the right-hand side quantized when it arrives, asymmetric
// uint8 (scale = range / 255, range including 0, and a zero point);
// products summed exactly in int32 (depth up to 65536: PackedMatrix keeps
// deeper matrices in fp32); then
//   out[r][j] += scale_r * scale_j * (sum_k q_w[r][k] q_x[k][j]
//                                     - zero_j * sum_k q_w[r][k]).
// Compiled with -march=x86-64-v4 -mavx512vnni (model/CMakeLists.txt) for
// AVX512_VNNI's VPDPBUSD (four uint8 x int8 products summed into each int32
// lane); kernels.cc uses it only with the v4 kernels on CPUs that report
// avx512vnni (elsewhere PackedMatrix runs the int8-rounded weights on the
// fp32 kernels). Same isolation rules as kernels_isa.cc: internal linkage
// only, no inline code shared with other objects; so its blocking and driver
// (Group, GroupOfWidth, Gemm) mirror kernels_bf16.cc's on purpose.
#include <cstddef>
#include <cstdint>

#include "model/kernel_table.h"

// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*() and warn
// about it once inlined (GCC bug 105593, fixed in GCC 13).
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

namespace ctxembed {
namespace kernels_int8 {
namespace {

constexpr int kLanes = 16;            // int32 sums per 512-bit register
constexpr int kMv = 2;                // registers of rows per panel
constexpr int kPanel = kLanes * kMv;  // rows per panel
constexpr int kNr = 12;               // columns per micro-kernel
constexpr ptrdiff_t kRhsChunkWords = (128 << 10) / 4;

int Quads(int cols) { return (cols + 3) / 4; }

// Packed W, panel after panel; panel p holds rows [p * kPanel, ...): for
// each quad of columns (4k .. 4k + 3), kPanel 32-bit words, each the four
// int8 values of one row (lowest byte: column 4k); then kPanel floats (the
// rows' scales) and kPanel int32 (the sums of each row's int8 values). Zero
// past the last row and column.
ptrdiff_t PanelWords(int cols) {
  return static_cast<ptrdiff_t>(Quads(cols)) * kPanel + 2 * kPanel;
}

size_t PackedBytes(int rows, int cols) {
  const size_t panels = (static_cast<size_t>(rows) + kPanel - 1) / kPanel;
  return panels * PanelWords(cols) * 4;
}

// Round to nearest, ties to even, as the int8 schemes do (rint in the
// default rounding mode; an instruction from SSE4.1 on).
int RoundToInt(float v) { return static_cast<int>(__builtin_rintf(v)); }

void Pack(const float* w, ptrdiff_t row_stride, ptrdiff_t col_stride, int rows,
          int cols, void* dst) {
  uint32_t* out = static_cast<uint32_t*>(dst);
  const int quads = Quads(cols);
  for (int r0 = 0; r0 < rows; r0 += kPanel) {
    uint32_t* panel = out + (r0 / kPanel) * PanelWords(cols);
    float* scales = reinterpret_cast<float*>(panel + quads * kPanel);
    int32_t* sums = reinterpret_cast<int32_t*>(scales + kPanel);
    for (int i = 0; i < kPanel; ++i) {
      const int r = r0 + i;
      float amax = 0.0f;
      for (int c = 0; r < rows && c < cols; ++c) {
        const float v = w[r * row_stride + c * col_stride];
        const float a = v < 0 ? -v : v;
        if (a > amax) amax = a;
      }
      const float scale = amax / 127.0f;
      const float inv = amax > 0 ? 127.0f / amax : 0.0f;
      int32_t sum = 0;
      for (int k = 0; k < quads; ++k) {
        uint32_t word = 0;
        for (int b = 0; b < 4; ++b) {
          const int c = 4 * k + b;
          int q = 0;
          if (r < rows && c < cols) {
            q = RoundToInt(w[r * row_stride + c * col_stride] * inv);
            q = q > 127 ? 127 : q < -127 ? -127 : q;
          }
          sum += q;
          word |= static_cast<uint32_t>(static_cast<uint8_t>(q)) << (8 * b);
        }
        panel[k * kPanel + i] = word;
      }
      scales[i] = scale;
      sums[i] = sum;
    }
  }
}

ptrdiff_t ChunkColumns(int cols, int n) {
  ptrdiff_t chunk = kRhsChunkWords / Quads(cols > 0 ? cols : 1) / kNr * kNr;
  if (chunk < kNr) chunk = kNr;
  return chunk < n ? chunk : n;
}

// The chunk's quantized columns (quads of uint8, grouped by kNr columns as
// the micro-kernel reads them), then its columns' scales and zero points.
size_t ScratchBytes(int cols, int n) {
  const ptrdiff_t chunk = ChunkColumns(cols, n);
  const ptrdiff_t padded = (chunk + kNr - 1) / kNr * kNr;
  return static_cast<size_t>(padded * Quads(cols) + 2 * padded) * 4;
}

// Column x (cols floats) -> uint8, the range [min(0, lo), max(0, hi)] onto
// 0..255 (so 0 is exact), written as quads: quad k (values 4k .. 4k + 3,
// lowest byte first, 0 past the end) at q[k * stride]. Returns the scale
// and zero point (0 and 0 for a column of zeros).
// 16 values at a time; cvtps rounds to nearest even, as RoundToInt does.
void QuantizeColumn(const float* x, int cols, uint32_t* q, ptrdiff_t stride,
                    float* scale, int32_t* zero) {
  __m512 vlo = _mm512_setzero_ps(), vhi = _mm512_setzero_ps();
  for (int k = 0; k < cols; k += 16) {
    const __mmask16 mask = cols - k >= 16
                               ? static_cast<__mmask16>(0xFFFF)
                               : static_cast<__mmask16>((1u << (cols - k)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(mask, x + k);
    vlo = _mm512_min_ps(vlo, v);
    vhi = _mm512_max_ps(vhi, v);
  }
  const float lo = _mm512_reduce_min_ps(vlo), hi = _mm512_reduce_max_ps(vhi);
  const float inv = hi > lo ? 255.0f / (hi - lo) : 0.0f;
  int z = RoundToInt(-lo * inv);
  z = z < 0 ? 0 : z > 255 ? 255 : z;
  const __m512 vinv = _mm512_set1_ps(inv);
  const __m512i vz = _mm512_set1_epi32(z), v255 = _mm512_set1_epi32(255);
  const int quads = Quads(cols);
  for (int k = 0; k < cols; k += 16) {
    const __mmask16 mask = cols - k >= 16
                               ? static_cast<__mmask16>(0xFFFF)
                               : static_cast<__mmask16>((1u << (cols - k)) - 1);
    __m512i v = _mm512_cvtps_epi32(
        _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, x + k), vinv));
    v = _mm512_min_epi32(
        _mm512_max_epi32(_mm512_add_epi32(v, vz), _mm512_setzero_si512()),
        v255);
    v = _mm512_maskz_mov_epi32(mask, v);  // 0 past the end
    alignas(16) uint32_t words[4];
    _mm_store_si128(reinterpret_cast<__m128i*>(words), _mm512_cvtepi32_epi8(v));
    for (int i = 0; i < 4 && k / 4 + i < quads; ++i) {
      q[(k / 4 + i) * stride] = words[i];
    }
  }
  *scale = hi > lo ? (hi - lo) / 255.0f : 0.0f;
  *zero = z;
}

// acc += the four uint8 x int8 products of each lane of u and s
// (VPDPBUSD). Written as inline assembly that accumulates in place: with the
// intrinsic GCC 12 copies every accumulator to a scratch register and back
// around each instruction, which halves the kernel's speed.
inline __m512i Dpbusd(__m512i acc, __m512i u, __m512i s) {
  __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u), "v"(s));
  return acc;
}

template <int P, int NR>
inline void MicroKernel(const uint32_t* __restrict a, ptrdiff_t panel_stride,
                        const uint32_t* __restrict xs, int quads,
                        const float* __restrict col_scale,
                        const int32_t* __restrict col_zero,
                        float* __restrict out, ptrdiff_t ldo,
                        const float* __restrict bias, int rows) {
  __m512i acc[P][NR][kMv];
#pragma GCC unroll 16
  for (int p = 0; p < P; ++p)
#pragma GCC unroll 16
    for (int j = 0; j < NR; ++j)
#pragma GCC unroll 16
      for (int m = 0; m < kMv; ++m) acc[p][j][m] = _mm512_setzero_si512();
  for (int k = 0; k < quads; ++k) {
    __m512i w[P][kMv];
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p)
#pragma GCC unroll 16
      for (int m = 0; m < kMv; ++m)
        w[p][m] =
            _mm512_loadu_si512(a + p * panel_stride + k * kPanel + m * kLanes);
#pragma GCC unroll 16
    for (int j = 0; j < NR; ++j) {
      const __m512i x = _mm512_set1_epi32(static_cast<int>(xs[k * NR + j]));
#pragma GCC unroll 16
      for (int p = 0; p < P; ++p)
#pragma GCC unroll 16
        for (int m = 0; m < kMv; ++m)
          acc[p][j][m] = Dpbusd(acc[p][j][m], x, w[p][m]);
    }
  }
  for (int p = 0; p < P; ++p) {
    const uint32_t* panel = a + p * panel_stride;
    const float* scales =
        reinterpret_cast<const float*>(panel + quads * kPanel);
    const int32_t* sums = reinterpret_cast<const int32_t*>(scales + kPanel);
    for (int m = 0; m < kMv; ++m) {
      const int first = p * kPanel + m * kLanes;
      if (first >= rows) break;
      const __mmask16 mask =
          rows - first >= kLanes
              ? static_cast<__mmask16>(0xFFFF)
              : static_cast<__mmask16>((1u << (rows - first)) - 1);
      const __m512 scale = _mm512_loadu_ps(scales + m * kLanes);
      const __m512i sum = _mm512_loadu_si512(sums + m * kLanes);
      for (int j = 0; j < NR; ++j) {
        const __m512i corrected = _mm512_sub_epi32(
            acc[p][j][m],
            _mm512_mullo_epi32(_mm512_set1_epi32(col_zero[j]), sum));
        const __m512 factor =
            _mm512_mul_ps(scale, _mm512_set1_ps(col_scale[j]));
        float* o = out + j * ldo + first;
        // With a bias, out = bias + the product; else out += the product.
        const float* base = bias != nullptr ? bias + first : o;
        _mm512_mask_storeu_ps(
            o, mask,
            _mm512_fmadd_ps(_mm512_cvtepi32_ps(corrected), factor,
                            _mm512_maskz_loadu_ps(mask, base)));
      }
    }
  }
}

template <int NR>
void Group(const uint32_t* packed, int rows, int cols, const uint32_t* xs,
           const float* col_scale, const int32_t* col_zero, float* out,
           ptrdiff_t ldo, const float* bias) {
  constexpr int kP = NR >= 4 ? 1 : NR >= 2 ? 2 : 4;
  const ptrdiff_t stride = PanelWords(cols);
  int r0 = 0;
  for (; r0 + kP * kPanel <= rows; r0 += kP * kPanel) {
    MicroKernel<kP, NR>(packed + (r0 / kPanel) * stride, stride, xs,
                        Quads(cols), col_scale, col_zero, out + r0, ldo,
                        bias != nullptr ? bias + r0 : nullptr, kP * kPanel);
  }
  for (; r0 < rows; r0 += kPanel) {
    const int left = rows - r0 < kPanel ? rows - r0 : kPanel;
    MicroKernel<1, NR>(packed + (r0 / kPanel) * stride, stride, xs, Quads(cols),
                       col_scale, col_zero, out + r0, ldo,
                       bias != nullptr ? bias + r0 : nullptr, left);
  }
}

void GroupOfWidth(int nr, const uint32_t* packed, int rows, int cols,
                  const uint32_t* xs, const float* col_scale,
                  const int32_t* col_zero, float* out, ptrdiff_t ldo,
                  const float* bias) {
  switch (nr) {
#define CTXEMBED_INT8_CASE(N)                                              \
  case N:                                                                  \
    return Group<N>(packed, rows, cols, xs, col_scale, col_zero, out, ldo, \
                    bias);
    CTXEMBED_INT8_CASE(1)
    CTXEMBED_INT8_CASE(2)
    CTXEMBED_INT8_CASE(3)
    CTXEMBED_INT8_CASE(4)
    CTXEMBED_INT8_CASE(5)
    CTXEMBED_INT8_CASE(6)
    CTXEMBED_INT8_CASE(7)
    CTXEMBED_INT8_CASE(8)
    CTXEMBED_INT8_CASE(9)
    CTXEMBED_INT8_CASE(10)
    CTXEMBED_INT8_CASE(11)
    CTXEMBED_INT8_CASE(12)
#undef CTXEMBED_INT8_CASE
  }
}

void Gemm(const void* packed_void, int rows, int cols, const float* x,
          ptrdiff_t ldx, int n, float* out, ptrdiff_t ldo, const float* bias,
          void* scratch) {
  if (rows <= 0 || cols <= 0 || n <= 0) return;
  const uint32_t* packed = static_cast<const uint32_t*>(packed_void);
  const int quads = Quads(cols);
  const ptrdiff_t chunk = ChunkColumns(cols, n);
  const ptrdiff_t padded = (chunk + kNr - 1) / kNr * kNr;
  uint32_t* words = static_cast<uint32_t*>(scratch);
  float* col_scale = reinterpret_cast<float*>(words + padded * quads);
  int32_t* col_zero = reinterpret_cast<int32_t*>(col_scale + padded);
  for (ptrdiff_t j0 = 0; j0 < n; j0 += chunk) {
    const int width = static_cast<int>(n - j0 < chunk ? n - j0 : chunk);
    // Quantize the chunk's columns, laid out group by group.
    uint32_t* dst = words;
    for (int g = 0; g < width; g += kNr) {
      const int nr = width - g < kNr ? width - g : kNr;
      for (int j = 0; j < nr; ++j) {
        QuantizeColumn(x + (j0 + g + j) * ldx, cols, dst + j, nr,
                       &col_scale[g + j], &col_zero[g + j]);
      }
      dst += static_cast<ptrdiff_t>(nr) * quads;
    }
    const uint32_t* xs = words;
    for (int g = 0; g < width; g += kNr) {
      const int nr = width - g < kNr ? width - g : kNr;
      GroupOfWidth(nr, packed, rows, cols, xs, col_scale + g, col_zero + g,
                   out + (j0 + g) * ldo, ldo, bias);
      xs += static_cast<ptrdiff_t>(nr) * quads;
    }
  }
}

}  // namespace

extern const ReducedGemm kGemm;
const ReducedGemm kGemm = {kPanel, PackedBytes, Pack, ScratchBytes, Gemm};

}  // namespace kernels_int8
}  // namespace ctxembed
