// The bf16 GEMM of model/kernel_table.h (ReducedGemm): weights stored as
// bfloat16, the right-hand side rounded to bfloat16 as it is packed, products
// summed in fp32 by AVX512_BF16's VDPBF16PS. Compiled with
// -march=x86-64-v4 -mavx512bf16 (model/CMakeLists.txt); kernels.cc uses it
// only on CPUs that report avx512bf16. Same isolation rules as
// kernels_isa.cc: internal linkage only, no inline code shared with other
// objects (the intrinsics are always inlined). Its blocking and driver
// (Group, GroupOfWidth, Gemm) mirror kernels_isa.cc's on purpose: the two
// objects may not share inline code, and the packed types differ.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "model/kernel_table.h"

namespace ctxembed {
namespace kernels_bf16 {
namespace {

constexpr int kLanes = 16;            // fp32 outputs per register
constexpr int kMv = 2;                // registers of rows per panel
constexpr int kPanel = kLanes * kMv;  // rows per panel
constexpr int kNr = 12;               // columns per micro-kernel
constexpr ptrdiff_t kRhsChunkPairs = (128 << 10) / 4;

// fp32 -> bf16, round to nearest even (the inputs are finite).
uint16_t ToBf16(float f) {
  uint32_t bits;
  __builtin_memcpy(&bits, &f, 4);
  bits += 0x7FFF + ((bits >> 16) & 1);
  return static_cast<uint16_t>(bits >> 16);
}

uint32_t Pair(float lo, float hi) {
  return static_cast<uint32_t>(ToBf16(lo)) |
         (static_cast<uint32_t>(ToBf16(hi)) << 16);
}

int Pairs(int cols) { return (cols + 1) / 2; }

// Packed W: panel p holds rows [p * kPanel, (p + 1) * kPanel); for each pair
// of columns (2k, 2k + 1), kPanel 32-bit words, each the two bf16 values of
// one row (low half: column 2k). Zero past the last row and column.
size_t PackedBytes(int rows, int cols) {
  const size_t panels = (static_cast<size_t>(rows) + kPanel - 1) / kPanel;
  return panels * kPanel * Pairs(cols) * 4;
}

void Pack(const float* w, ptrdiff_t row_stride, ptrdiff_t col_stride, int rows,
          int cols, void* dst) {
  uint32_t* out = static_cast<uint32_t*>(dst);
  for (int r0 = 0; r0 < rows; r0 += kPanel) {
    for (int k = 0; k < Pairs(cols); ++k) {
      for (int i = 0; i < kPanel; ++i) {
        const int r = r0 + i, c = 2 * k;
        const float lo = r < rows ? w[r * row_stride + c * col_stride] : 0.0f;
        const float hi = r < rows && c + 1 < cols
                             ? w[r * row_stride + (c + 1) * col_stride]
                             : 0.0f;
        *out++ = Pair(lo, hi);
      }
    }
  }
}

ptrdiff_t ChunkColumns(int cols, int n) {
  ptrdiff_t chunk = kRhsChunkPairs / Pairs(cols > 0 ? cols : 1) / kNr * kNr;
  if (chunk < kNr) chunk = kNr;
  return chunk < n ? chunk : n;
}

size_t ScratchBytes(int cols, int n) {
  const ptrdiff_t chunk = ChunkColumns(cols, n);
  return static_cast<size_t>((chunk + kNr - 1) / kNr * kNr) * Pairs(cols) * 4;
}

template <int P, int NR>
inline void MicroKernel(const uint32_t* __restrict a, ptrdiff_t panel_stride,
                        const uint32_t* __restrict xs, int pairs,
                        float* __restrict out, ptrdiff_t ldo,
                        const float* __restrict bias, int rows) {
  __m512 acc[P][NR][kMv];
#pragma GCC unroll 16
  for (int p = 0; p < P; ++p)
#pragma GCC unroll 16
    for (int j = 0; j < NR; ++j)
#pragma GCC unroll 16
      for (int m = 0; m < kMv; ++m) acc[p][j][m] = _mm512_setzero_ps();
  for (int k = 0; k < pairs; ++k) {
    __m512bh w[P][kMv];
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p)
#pragma GCC unroll 16
      for (int m = 0; m < kMv; ++m)
        w[p][m] = (__m512bh)_mm512_loadu_si512(a + p * panel_stride +
                                               k * kPanel + m * kLanes);
#pragma GCC unroll 16
    for (int j = 0; j < NR; ++j) {
      const __m512bh x =
          (__m512bh)_mm512_set1_epi32(static_cast<int>(xs[k * NR + j]));
#pragma GCC unroll 16
      for (int p = 0; p < P; ++p)
#pragma GCC unroll 16
        for (int m = 0; m < kMv; ++m)
          acc[p][j][m] = _mm512_dpbf16_ps(acc[p][j][m], w[p][m], x);
    }
  }
  for (int j = 0; j < NR; ++j) {
    for (int p = 0; p < P; ++p) {
      for (int m = 0; m < kMv; ++m) {
        const int first = p * kPanel + m * kLanes;
        if (first >= rows) break;
        float* o = out + j * ldo + first;
        // With a bias, out = bias + the product; else out += the product.
        const float* base = bias != nullptr ? bias + first : o;
        if (rows - first >= kLanes) {
          _mm512_storeu_ps(o,
                           _mm512_add_ps(_mm512_loadu_ps(base), acc[p][j][m]));
        } else {
          const __mmask16 mask =
              static_cast<__mmask16>((1u << (rows - first)) - 1);
          _mm512_mask_storeu_ps(
              o, mask,
              _mm512_add_ps(_mm512_maskz_loadu_ps(mask, base), acc[p][j][m]));
        }
      }
    }
  }
}

template <int NR>
void Group(const uint32_t* packed, int rows, int cols, const uint32_t* xs,
           float* out, ptrdiff_t ldo, const float* bias) {
  constexpr int kP = NR >= 4 ? 1 : NR >= 2 ? 2 : 4;
  const ptrdiff_t stride = static_cast<ptrdiff_t>(kPanel) * Pairs(cols);
  int r0 = 0;
  for (; r0 + kP * kPanel <= rows; r0 += kP * kPanel) {
    MicroKernel<kP, NR>(packed + (r0 / kPanel) * stride, stride, xs,
                        Pairs(cols), out + r0, ldo,
                        bias != nullptr ? bias + r0 : nullptr, kP * kPanel);
  }
  for (; r0 < rows; r0 += kPanel) {
    const int left = rows - r0 < kPanel ? rows - r0 : kPanel;
    MicroKernel<1, NR>(packed + (r0 / kPanel) * stride, stride, xs, Pairs(cols),
                       out + r0, ldo, bias != nullptr ? bias + r0 : nullptr,
                       left);
  }
}

void GroupOfWidth(int nr, const uint32_t* packed, int rows, int cols,
                  const uint32_t* xs, float* out, ptrdiff_t ldo,
                  const float* bias) {
  switch (nr) {
    case 1:
      return Group<1>(packed, rows, cols, xs, out, ldo, bias);
    case 2:
      return Group<2>(packed, rows, cols, xs, out, ldo, bias);
    case 3:
      return Group<3>(packed, rows, cols, xs, out, ldo, bias);
    case 4:
      return Group<4>(packed, rows, cols, xs, out, ldo, bias);
    case 5:
      return Group<5>(packed, rows, cols, xs, out, ldo, bias);
    case 6:
      return Group<6>(packed, rows, cols, xs, out, ldo, bias);
    case 7:
      return Group<7>(packed, rows, cols, xs, out, ldo, bias);
    case 8:
      return Group<8>(packed, rows, cols, xs, out, ldo, bias);
    case 9:
      return Group<9>(packed, rows, cols, xs, out, ldo, bias);
    case 10:
      return Group<10>(packed, rows, cols, xs, out, ldo, bias);
    case 11:
      return Group<11>(packed, rows, cols, xs, out, ldo, bias);
    case 12:
      return Group<12>(packed, rows, cols, xs, out, ldo, bias);
  }
}

void Gemm(const void* packed_void, int rows, int cols, const float* x,
          ptrdiff_t ldx, int n, float* out, ptrdiff_t ldo, const float* bias,
          void* scratch) {
  if (rows <= 0 || cols <= 0 || n <= 0) return;
  const uint32_t* packed = static_cast<const uint32_t*>(packed_void);
  const int pairs = Pairs(cols);
  const ptrdiff_t chunk = ChunkColumns(cols, n);
  for (ptrdiff_t j0 = 0; j0 < n; j0 += chunk) {
    const int width = static_cast<int>(n - j0 < chunk ? n - j0 : chunk);
    // Pack the chunk's columns as bf16 pairs, group by group.
    uint32_t* dst = static_cast<uint32_t*>(scratch);
    for (int g = 0; g < width; g += kNr) {
      const int nr = width - g < kNr ? width - g : kNr;
      for (int k = 0; k < pairs; ++k) {
        for (int j = 0; j < nr; ++j) {
          const float* col = x + (j0 + g + j) * ldx;
          *dst++ = Pair(col[2 * k], 2 * k + 1 < cols ? col[2 * k + 1] : 0.0f);
        }
      }
    }
    const uint32_t* xs = static_cast<const uint32_t*>(scratch);
    for (int g = 0; g < width; g += kNr) {
      const int nr = width - g < kNr ? width - g : kNr;
      GroupOfWidth(nr, packed, rows, cols, xs, out + (j0 + g) * ldo, ldo, bias);
      xs += static_cast<ptrdiff_t>(nr) * pairs;
    }
  }
}

}  // namespace

extern const ReducedGemm kGemm;
const ReducedGemm kGemm = {kPanel, PackedBytes, Pack, ScratchBytes, Gemm};

}  // namespace kernels_bf16
}  // namespace ctxembed
