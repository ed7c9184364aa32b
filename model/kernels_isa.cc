// The kernels of model/kernel_table.h for one instruction-set level. This
// file is compiled once per level (model/CMakeLists.txt: -march=x86-64-v2,
// -v3, -v4, or the target's default for "generic"), with
// CTXEMBED_KERNEL_NS naming the level's namespace.
//
// Isolation: every function here has internal linkage (an anonymous
// namespace) and the file includes no header with inline functions or
// templates (GCC's vector extensions need none). Otherwise the linker would
// keep one copy of an inline function for the whole program, compiled for
// whichever level it met first, and a v4 instruction could reach a v3 CPU.
// tests/check_kernel_symbols.py checks the object files for that.
#include <cstddef>
#include <cstdint>

#include "model/kernel_table.h"

#ifndef CTXEMBED_KERNEL_NS
#error "CTXEMBED_KERNEL_NS must name the level (kernels_v3, ...)"
#endif
#ifndef CTXEMBED_KERNEL_ISA
#error "CTXEMBED_KERNEL_ISA must be the level's name as a string"
#endif

namespace ctxembed {
namespace CTXEMBED_KERNEL_NS {
namespace {

// Register blocking of the GEMM micro-kernel: a panel of kMv vectors of
// rows (the packed weights) by kNr columns, kMv * kNr accumulators.
#if defined(__AVX512F__)
constexpr int kLanes = 16;
constexpr int kMv = 2;
constexpr int kNr = 12;  // 24 accumulators of 32 registers
#elif defined(__AVX__)
constexpr int kLanes = 8;
// 12 accumulators of 16 registers. 3 x 4 rather than 2 x 6: a batch of 8
// is then two full groups of 4 (12 accumulators each) instead of two of 4
// at 8 accumulators, too few to hide the FMA latency (bench/gemm_bench
// v3/lstm_step_h256_b8: 101 -> 108 GFLOP/s; the other shapes unchanged).
constexpr int kMv = 3;
constexpr int kNr = 4;
#else
constexpr int kLanes = 4;
constexpr int kMv = 2;
constexpr int kNr = 6;
#endif
constexpr int kPanel = kLanes * kMv;  // rows per packed panel
// Packed right-hand side per pass over the weights: stays in L2.
constexpr ptrdiff_t kRhsChunkFloats = (128 << 10) / 4;
// Packed W per block of rows, reused across a chunk's column groups from
// the core's L2 (bench/gemm_bench: 128 KB is as good as any from 32 KB to
// 512 KB; without blocks, W's rows stream from memory once per group).
constexpr ptrdiff_t kWBlockFloats = (128 << 10) / 4;

typedef float Vec __attribute__((vector_size(kLanes * 4)));
typedef int32_t IVec __attribute__((vector_size(kLanes * 4)));

inline Vec Load(const float* p) {
  Vec v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
inline void Store(float* p, Vec v) { __builtin_memcpy(p, &v, sizeof v); }
// (x - 0 is exactly x for every x, so this folds to a broadcast; x + 0
// would not, -0 + 0 being +0.)
inline Vec Splat(float x) { return x - Vec{}; }
// The first n (< kLanes) floats; the rest zero.
inline Vec LoadPartial(const float* p, int n) {
  Vec v = {};
  for (int i = 0; i < n; ++i) v[i] = p[i];
  return v;
}
inline void StorePartial(float* p, Vec v, int n) {
  for (int i = 0; i < n; ++i) p[i] = v[i];
}
inline Vec Min(Vec a, Vec b) { return a < b ? a : b; }
inline Vec Max(Vec a, Vec b) { return a > b ? a : b; }

// exp(x) to about 1 ulp (Cephes' expf): x = n ln2 + r, |r| <= ln2 / 2,
// exp(r) by a degree-6 polynomial, 2^n built in the exponent bits. x is
// clamped to [-87.3, 88.3], where 2^n stays a normal float.
inline Vec Exp(Vec x) {
  x = Max(Min(x, Splat(88.3f)), Splat(-87.3f));
  const Vec magic = Splat(12582912.0f);  // 1.5 * 2^23: rounds to integer
  const Vec n = (x * 1.44269504088896341f + magic) - magic;
  Vec r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  Vec p = Splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const IVec bits = (__builtin_convertvector(n, IVec) + 127) << 23;
  return p * (Vec)bits;
}

inline Vec Logistic(Vec x) { return 1.0f / (1.0f + Exp(-x)); }

// tanh(|x|) = 1 - 2 / (exp(2|x|) + 1), with x's sign put back.
inline Vec Tanh(Vec x) {
  // Vector casts between vectors of one size reinterpret the bits.
  const IVec sign = (IVec)x & INT32_MIN;
  const Vec ax = (Vec)((IVec)x & INT32_MAX);
  const Vec t = 1.0f - 2.0f / (Exp(ax + ax) + 1.0f);
  return (Vec)((IVec)t | sign);
}

// ---- GEMM -----------------------------------------------------------------
// Packed W: panel p holds rows [p * kPanel, (p + 1) * kPanel) as cols
// consecutive runs of kPanel floats (row-fastest), zero past the last row.
// Packed x: a group of nr <= kNr columns as cols runs of nr floats.

size_t PackedFloats(int rows, int cols) {
  const size_t panels = (static_cast<size_t>(rows) + kPanel - 1) / kPanel;
  return panels * kPanel * static_cast<size_t>(cols);
}

// Interleaves the low halves of a and b (a0 b0 a1 b1 ...), or the high
// halves. (__builtin_shufflevector: GCC 12 and clang both have it.)
#if defined(__AVX512F__)
inline Vec ZipLow(Vec a, Vec b) {
  return __builtin_shufflevector(a, b, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21,
                                 6, 22, 7, 23);
}
inline Vec ZipHigh(Vec a, Vec b) {
  return __builtin_shufflevector(a, b, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13,
                                 29, 14, 30, 15, 31);
}
#elif defined(__AVX__)
inline Vec ZipLow(Vec a, Vec b) {
  return __builtin_shufflevector(a, b, 0, 8, 1, 9, 2, 10, 3, 11);
}
inline Vec ZipHigh(Vec a, Vec b) {
  return __builtin_shufflevector(a, b, 4, 12, 5, 13, 6, 14, 7, 15);
}
#else
inline Vec ZipLow(Vec a, Vec b) {
  return __builtin_shufflevector(a, b, 0, 4, 1, 5);
}
inline Vec ZipHigh(Vec a, Vec b) {
  return __builtin_shufflevector(a, b, 2, 6, 3, 7);
}
#endif

// The kLanes x kLanes matrix of rows t[] transposed in place: log2(kLanes)
// rounds of interleaving row i with row i + kLanes / 2 (a perfect shuffle
// of the rows and of the lanes each round).
inline void Transpose(Vec (&t)[kLanes]) {
  constexpr int kHalf = kLanes / 2;
#pragma GCC unroll 4
  for (int round = 1; round < kLanes; round *= 2) {
    Vec u[kLanes];
#pragma GCC unroll 16
    for (int i = 0; i < kHalf; ++i) {
      u[2 * i] = ZipLow(t[i], t[i + kHalf]);
      u[2 * i + 1] = ZipHigh(t[i], t[i + kHalf]);
    }
#pragma GCC unroll 16
    for (int i = 0; i < kLanes; ++i) t[i] = u[i];
  }
}

// t[i] = the kLanes floats at p + i * stride for i < count, zero for the
// rest; then transposed: t[k] holds lane k of every source, in order.
inline void LoadTransposed(const float* p, ptrdiff_t stride, int count,
                           Vec (&t)[kLanes]) {
#pragma GCC unroll 16
  for (int i = 0; i < kLanes; ++i)
    t[i] = i < count ? Load(p + i * stride) : Vec{};
  Transpose(t);
}

// Packs panel by panel. Two layouts take whole vectors: columns whose
// kPanel rows are contiguous (row_stride 1: a copy), and rows whose columns
// are contiguous (col_stride 1: kLanes x kLanes tiles transposed in
// registers), as attention packs V and K for every head of every sentence.
void Pack(const float* w, ptrdiff_t row_stride, ptrdiff_t col_stride, int rows,
          int cols, float* dst) {
  for (int r0 = 0; r0 < rows; r0 += kPanel, dst += kPanel * cols) {
    const int height = rows - r0 < kPanel ? rows - r0 : kPanel;
    int c0 = 0;
    if (row_stride == 1 && height == kPanel) {
      for (; c0 < cols; ++c0) {
#pragma GCC unroll 4
        for (int m = 0; m < kMv; ++m) {
          Store(dst + c0 * kPanel + m * kLanes,
                Load(w + r0 + c0 * col_stride + m * kLanes));
        }
      }
    } else if (col_stride == 1) {
      for (; c0 + kLanes <= cols; c0 += kLanes) {
        for (int m = 0; m < kMv; ++m) {
          // Rows past the last are zero (and never addressed).
          const int first = r0 + m * kLanes;
          Vec t[kLanes];
          LoadTransposed(first < rows ? w + first * row_stride + c0 : w,
                         row_stride, rows - first, t);
#pragma GCC unroll 16
          for (int c = 0; c < kLanes; ++c)
            Store(dst + (c0 + c) * kPanel + m * kLanes, t[c]);
        }
      }
    }
    for (int c = c0; c < cols; ++c) {
      for (int i = 0; i < kPanel; ++i) {
        const int r = r0 + i;
        dst[c * kPanel + i] =
            r < rows ? w[r * row_stride + c * col_stride] : 0.0f;
      }
    }
  }
}

// Columns per chunk of the right-hand side: at most kRhsChunkFloats of it,
// the chunks of n as even as that allows (64 columns of depth 512 are two
// chunks of 32, not 60 and a narrow 4).
ptrdiff_t ChunkColumns(int cols, int n) {
  ptrdiff_t most = kRhsChunkFloats / (cols > 0 ? cols : 1) / kNr * kNr;
  if (most < kNr) most = kNr;
  if (n <= most) return n;
  const ptrdiff_t chunks = (n + most - 1) / most;
  return (n + chunks - 1) / chunks;
}

// Rows of W (whole panels) per block of Gemm: kWBlockFloats of packed W.
// A right-hand side of under 4 columns is one narrow group, multiplied 4
// or 2 panels at a time (Group); its blocks are whole runs of 4 panels,
// else each block's odd panels go to the one-panel kernel, whose few
// accumulators cannot hide the FMA latency (v3 at depth 256: 5 panels a
// block, one of them alone).
int BlockRows(int cols, int width) {
  ptrdiff_t panels = kWBlockFloats / (static_cast<ptrdiff_t>(kPanel) * cols);
  if (width < 4) panels = panels < 4 ? 4 : panels / 4 * 4;
  return static_cast<int>(panels > 1 ? panels : 1) * kPanel;
}

// Group q's width when `width` columns are split into `groups` groups of
// at most kNr: as even as possible (14 columns at kNr 12 are 7 + 7, not
// 12 + 2: a narrow group keeps too few accumulators busy).
inline int GroupWidth(int width, int groups, int q) {
  return width / groups + (q < width % groups ? 1 : 0);
}

size_t GemmScratchFloats(int cols, int n) {
  const ptrdiff_t chunk = ChunkColumns(cols, n);
  return static_cast<size_t>((chunk + kNr - 1) / kNr * kNr) * cols + kLanes;
}

// out (P panels x NR columns) += panels * xs. `a` is the first panel, the
// next ones follow `panel_stride` floats apart; `rows` of the P * kPanel
// rows are real (the last panel of W may be partial). xs holds the NR
// columns k-major: column j at depth k is xs[k * xstride + j] (xstride NR
// when packed).
// With `bias` (rows floats), out = bias + panels * xs instead: out's old
// values are not read.
template <int P, int NR>
inline void MicroKernel(const float* __restrict a, ptrdiff_t panel_stride,
                        const float* __restrict xs, ptrdiff_t xstride,
                        int depth, float* __restrict out, ptrdiff_t ldo,
                        const float* __restrict bias, int rows) {
  Vec acc[P][NR][kMv];
#pragma GCC unroll 16
  for (int p = 0; p < P; ++p)
#pragma GCC unroll 16
    for (int j = 0; j < NR; ++j)
#pragma GCC unroll 16
      for (int m = 0; m < kMv; ++m) acc[p][j][m] = Vec{};
  for (int k = 0; k < depth; ++k) {
    Vec w[P][kMv];
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p)
#pragma GCC unroll 16
      for (int m = 0; m < kMv; ++m)
        w[p][m] = Load(a + p * panel_stride + k * kPanel + m * kLanes);
#pragma GCC unroll 16
    for (int j = 0; j < NR; ++j) {
      const Vec x = Splat(xs[k * xstride + j]);
#pragma GCC unroll 16
      for (int p = 0; p < P; ++p)
#pragma GCC unroll 16
        for (int m = 0; m < kMv; ++m) acc[p][j][m] += w[p][m] * x;
    }
  }
  if (rows == P * kPanel) {
#pragma GCC unroll 16
    for (int j = 0; j < NR; ++j)
#pragma GCC unroll 16
      for (int p = 0; p < P; ++p)
#pragma GCC unroll 16
        for (int m = 0; m < kMv; ++m) {
          const int r = p * kPanel + m * kLanes;
          float* o = out + j * ldo + r;
          Store(o, (bias != nullptr ? Load(bias + r) : Load(o)) + acc[p][j][m]);
        }
    return;
  }
  for (int j = 0; j < NR; ++j) {
    for (int p = 0; p < P; ++p) {
      for (int m = 0; m < kMv; ++m) {
        const int first = p * kPanel + m * kLanes;
        if (first >= rows) break;
        const int count = rows - first < kLanes ? rows - first : kLanes;
        float* o = out + j * ldo + first;
        const Vec base = bias != nullptr ? LoadPartial(bias + first, count)
                                         : LoadPartial(o, count);
        StorePartial(o, base + acc[p][j][m], count);
      }
    }
  }
}

// All panels of W against one packed group of NR columns; P panels at a
// time while they last (narrow groups need more independent accumulators
// than one panel gives).
template <int P, int NR>
void PanelsTimesGroup(const float* packed, int rows, int cols, const float* xs,
                      ptrdiff_t xstride, float* out, ptrdiff_t ldo,
                      const float* bias) {
  const ptrdiff_t stride = static_cast<ptrdiff_t>(kPanel) * cols;
  int r0 = 0;
  for (; r0 + P * kPanel <= rows; r0 += P * kPanel) {
    MicroKernel<P, NR>(packed + (r0 / kPanel) * stride, stride, xs, xstride,
                       cols, out + r0, ldo,
                       bias != nullptr ? bias + r0 : nullptr, P * kPanel);
  }
  for (; r0 < rows; r0 += kPanel) {
    const int left = rows - r0 < kPanel ? rows - r0 : kPanel;
    MicroKernel<1, NR>(packed + (r0 / kPanel) * stride, stride, xs, xstride,
                       cols, out + r0, ldo,
                       bias != nullptr ? bias + r0 : nullptr, left);
  }
}

template <int NR>
void Group(const float* packed, int rows, int cols, const float* xs,
           ptrdiff_t xstride, float* out, ptrdiff_t ldo, const float* bias) {
  constexpr int kP = NR >= 4 ? 1 : NR >= 2 ? 2 : 4;
  PanelsTimesGroup<kP, NR>(packed, rows, cols, xs, xstride, out, ldo, bias);
}

void GroupOfWidth(int nr, const float* packed, int rows, int cols,
                  const float* xs, ptrdiff_t xstride, float* out, ptrdiff_t ldo,
                  const float* bias) {
  switch (nr) {
    case 1:
      return Group<1>(packed, rows, cols, xs, xstride, out, ldo, bias);
    case 2:
      return Group<2>(packed, rows, cols, xs, xstride, out, ldo, bias);
    case 3:
      return Group<3>(packed, rows, cols, xs, xstride, out, ldo, bias);
    case 4:
      return Group<4>(packed, rows, cols, xs, xstride, out, ldo, bias);
    case 5:
      return Group<5>(packed, rows, cols, xs, xstride, out, ldo, bias);
    case 6:
      return Group<6>(packed, rows, cols, xs, xstride, out, ldo, bias);
#if defined(__AVX512F__)
    case 7:
      return Group<7>(packed, rows, cols, xs, xstride, out, ldo, bias);
    case 8:
      return Group<8>(packed, rows, cols, xs, xstride, out, ldo, bias);
    case 9:
      return Group<9>(packed, rows, cols, xs, xstride, out, ldo, bias);
    case 10:
      return Group<10>(packed, rows, cols, xs, xstride, out, ldo, bias);
    case 11:
      return Group<11>(packed, rows, cols, xs, xstride, out, ldo, bias);
    case 12:
      return Group<12>(packed, rows, cols, xs, xstride, out, ldo, bias);
#endif
  }
}

// Columns x[j * ldx + k] (j < nr) as cols k-major runs of nr floats. A
// vector of k per column at a time, transposed in registers: reading the
// columns element by element instead touches nr lines per k (with ldx a
// multiple of 1 KB, lines that share a few L1 sets and evict one another)
// and moves one float per instruction. Writes up to kLanes floats past
// the end (GemmScratchFloats leaves room).
void PackGroup(const float* x, ptrdiff_t ldx, int nr, int cols, float* dst) {
  int k0 = 0;
  if (nr <= kLanes) {
    for (; k0 + kLanes <= cols; k0 += kLanes) {
      Vec t[kLanes];
      LoadTransposed(x + k0, ldx, nr, t);
      // Each store's lanes past nr are overwritten by the next one.
#pragma GCC unroll 16
      for (int k = 0; k < kLanes; ++k) Store(dst + k * nr, t[k]);
      dst += kLanes * nr;
    }
  }
  for (int k = k0; k < cols; ++k)
    for (int j = 0; j < nr; ++j) *dst++ = x[j * ldx + k];
}

// A block of W's rows at a time against each of the groups `width`
// columns split into: the group streams from L1, the block is read from
// memory once and from the core's L2 for the other groups. The group at
// column g starts at xs + g * cols with its width as stride if `packed`
// (PackGroup's layout), else at xs + g with stride ldx (k-major in place).
// The blocks go first to last, or last to first if `backward`.
void BlocksTimesGroups(const float* packed, int rows, int cols, const float* xs,
                       bool xs_packed, ptrdiff_t ldx, int width, float* out,
                       ptrdiff_t ldo, const float* bias, bool backward) {
  const int block_rows = BlockRows(cols, width);
  const int blocks = (rows + block_rows - 1) / block_rows;
  const int groups = (width + kNr - 1) / kNr;
  for (int i = 0; i < blocks; ++i) {
    const int r0 = (backward ? blocks - 1 - i : i) * block_rows;
    const int nrows = rows - r0 < block_rows ? rows - r0 : block_rows;
    const float* block = packed + static_cast<ptrdiff_t>(r0) * cols;
    for (int g = 0, q = 0; q < groups; g += GroupWidth(width, groups, q++)) {
      const int nr = GroupWidth(width, groups, q);
      GroupOfWidth(nr, block, nrows, cols,
                   xs_packed ? xs + static_cast<ptrdiff_t>(g) * cols : xs + g,
                   xs_packed ? nr : ldx, out + g * ldo + r0, ldo,
                   bias != nullptr ? bias + r0 : nullptr);
    }
  }
}

void Gemm(const float* packed, int rows, int cols, const float* x,
          ptrdiff_t ldx, int n, float* out, ptrdiff_t ldo, const float* bias,
          float* scratch, bool backward) {
  if (rows <= 0 || cols <= 0 || n <= 0) return;
  if (n == 1) {
    // One column is its own k-major layout: read in place, not packed.
    BlocksTimesGroups(packed, rows, cols, x, false, 1, 1, out, ldo, bias,
                      backward);
    return;
  }
  const ptrdiff_t chunk = ChunkColumns(cols, n);
  for (ptrdiff_t j0 = 0; j0 < n; j0 += chunk) {
    const int width = static_cast<int>(n - j0 < chunk ? n - j0 : chunk);
    // Pack the chunk's columns group by group: k-major runs of nr floats.
    float* dst = scratch;
    const int groups = (width + kNr - 1) / kNr;
    for (int g = 0, q = 0; q < groups; g += GroupWidth(width, groups, q++)) {
      const int nr = GroupWidth(width, groups, q);
      PackGroup(x + (j0 + g) * ldx, ldx, nr, cols, dst);
      dst += static_cast<ptrdiff_t>(nr) * cols;
    }
    BlocksTimesGroups(packed, rows, cols, scratch, true, 0, width,
                      out + j0 * ldo, ldo, bias, backward);
  }
}

// Gemm with x already k-major: column j at depth k is x[k * ldx + j], read
// in place by the micro-kernel (attention's probabilities, stored so).
void GemmRows(const float* packed, int rows, int cols, const float* x,
              ptrdiff_t ldx, int n, float* out, ptrdiff_t ldo,
              const float* bias) {
  if (rows <= 0 || cols <= 0 || n <= 0) return;
  BlocksTimesGroups(packed, rows, cols, x, false, ldx, n, out, ldo, bias,
                    false);
}

// ---- Recurrent cells --------------------------------------------------------

// The cells work on U vectors of lanes at once (U > 1: whole vectors;
// U = 1: `count` lanes). Each lane's cell is a long chain of dependent
// operations (two exponentials in a row); interleaving independent chains
// in the instruction stream lets the core overlap them, where its
// out-of-order window alone holds about two (bench/gemm_bench's
// lstm_cell: 4 vectors at a time is 1.3x as fast at v3, 1.15x at v4).
constexpr int kCellVectors = 4;

template <int U>
inline Vec LoadLanes(const float* p, int u, int count) {
  return U > 1 || count == kLanes ? Load(p + u * kLanes)
                                  : LoadPartial(p, count);
}
template <int U>
inline void StoreLanes(float* p, int u, int count, Vec v) {
  if (U > 1 || count == kLanes) {
    Store(p + u * kLanes, v);
  } else {
    StorePartial(p, v, count);
  }
}

template <int U>
inline void LstmLanes(const float* g, float* c, float* h, int hidden, int r,
                      int count) {
  Vec i[U], f[U], gg[U], o[U], cn[U];
#pragma GCC unroll 8
  for (int u = 0; u < U; ++u) {
    i[u] = Logistic(LoadLanes<U>(g + r, u, count));
    f[u] = Logistic(LoadLanes<U>(g + hidden + r, u, count));
    gg[u] = Tanh(LoadLanes<U>(g + 2 * hidden + r, u, count));
    o[u] = Logistic(LoadLanes<U>(g + 3 * hidden + r, u, count));
  }
#pragma GCC unroll 8
  for (int u = 0; u < U; ++u)
    cn[u] = f[u] * LoadLanes<U>(c + r, u, count) + i[u] * gg[u];
#pragma GCC unroll 8
  for (int u = 0; u < U; ++u) {
    StoreLanes<U>(c + r, u, count, cn[u]);
    StoreLanes<U>(h + r, u, count, o[u] * Tanh(cn[u]));
  }
}

void LstmCell(const float* gates, ptrdiff_t ldg, float* c, float* h,
              ptrdiff_t ldh, int hidden, int b) {
  for (int col = 0; col < b; ++col) {
    const float* g = gates + col * ldg;
    float* cc = c + col * ldh;
    float* hh = h + col * ldh;
    int r = 0;
    for (; r + kCellVectors * kLanes <= hidden; r += kCellVectors * kLanes)
      LstmLanes<kCellVectors>(g, cc, hh, hidden, r, kLanes);
    for (; r + kLanes <= hidden; r += kLanes)
      LstmLanes<1>(g, cc, hh, hidden, r, kLanes);
    if (r < hidden) LstmLanes<1>(g, cc, hh, hidden, r, hidden - r);
  }
}

template <int U>
inline void GruLanes(const float* gi, const float* gh, float* h, int hidden,
                     int r, int count, bool first) {
  Vec rg[U], z[U], n[U];
#pragma GCC unroll 8
  for (int u = 0; u < U; ++u) {
    rg[u] = Logistic(LoadLanes<U>(gi + r, u, count) +
                     LoadLanes<U>(gh + r, u, count));
    z[u] = Logistic(LoadLanes<U>(gi + hidden + r, u, count) +
                    LoadLanes<U>(gh + hidden + r, u, count));
  }
#pragma GCC unroll 8
  for (int u = 0; u < U; ++u) {
    n[u] = Tanh(LoadLanes<U>(gi + 2 * hidden + r, u, count) +
                rg[u] * LoadLanes<U>(gh + 2 * hidden + r, u, count));
  }
#pragma GCC unroll 8
  for (int u = 0; u < U; ++u) {
    Vec out = (1.0f - z[u]) * n[u];
    if (!first) out += z[u] * LoadLanes<U>(h + r, u, count);
    StoreLanes<U>(h + r, u, count, out);
  }
}

void GruCell(const float* gi, const float* gh, ptrdiff_t ldg, float* h,
             ptrdiff_t ldh, int hidden, int b, bool first) {
  for (int col = 0; col < b; ++col) {
    const float* a = gi + col * ldg;
    const float* bb = gh + col * ldg;
    float* hh = h + col * ldh;
    int r = 0;
    for (; r + kCellVectors * kLanes <= hidden; r += kCellVectors * kLanes)
      GruLanes<kCellVectors>(a, bb, hh, hidden, r, kLanes, first);
    for (; r + kLanes <= hidden; r += kLanes)
      GruLanes<1>(a, bb, hh, hidden, r, kLanes, first);
    if (r < hidden) GruLanes<1>(a, bb, hh, hidden, r, hidden - r, first);
  }
}

template <Vec (*F)(Vec)>
void Apply(float* x, ptrdiff_t n) {
  ptrdiff_t i = 0;
  for (; i + kLanes <= n; i += kLanes) Store(x + i, F(Load(x + i)));
  if (i < n) {
    const int left = static_cast<int>(n - i);
    StorePartial(x + i, F(LoadPartial(x + i, left)), left);
  }
}

// ---- transformer element-wise steps ---------------------------------------

// erf(x) by Abramowitz and Stegun 7.1.26 (|error| <= 1.5e-7, plus float
// rounding): 1 - t (a1 + t (a2 + ...)) exp(-x^2), t = 1 / (1 + p |x|), odd.
inline Vec Erf(Vec x) {
  const IVec sign = (IVec)x & INT32_MIN;
  const Vec ax = (Vec)((IVec)x & INT32_MAX);
  const Vec t = 1.0f / (1.0f + 0.3275911f * ax);
  Vec p = Splat(1.061405429f);
  p = p * t + -1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t + -0.284496736f;
  p = p * t + 0.254829592f;
  const Vec y = 1.0f - p * t * Exp(-(ax * ax));
  return (Vec)((IVec)y | sign);
}

inline Vec Gelu(Vec x) {
  return 0.5f * x * (1.0f + Erf(x * 0.707106781186547524f));
}

inline float HorizontalSum(Vec v) {
  float s = 0.0f;
  for (int i = 0; i < kLanes; ++i) s += v[i];
  return s;
}

// Rows of a column-major matrix, a vector of rows at a time: each lane
// walks its own row across the columns, so no horizontal sums.
void SoftmaxRows(float* x, ptrdiff_t ld, int rows, int cols, float scale,
                 float* inv_sums) {
  if (cols <= 0) return;
  const Vec sc = Splat(scale);
  for (int r = 0; r < rows; r += kLanes) {
    const int count = rows - r < kLanes ? rows - r : kLanes;
    auto load = [&](int c) {
      return count == kLanes ? Load(x + r + c * ld)
                             : LoadPartial(x + r + c * ld, count);
    };
    Vec max = load(0);
    for (int c = 1; c < cols; ++c) max = Max(max, load(c));
    Vec sum = {};
    for (int c = 0; c < cols; ++c) {
      const Vec e = Exp((load(c) - max) * sc);
      sum += e;
      if (count == kLanes) {
        Store(x + r + c * ld, e);
      } else {
        StorePartial(x + r + c * ld, e, count);
      }
    }
    const Vec inv = 1.0f / sum;
    if (count == kLanes) {
      Store(inv_sums + r, inv);
    } else {
      StorePartial(inv_sums + r, inv, count);
    }
  }
}

// Sums f(c[r]) over the rows with four accumulators: one would chain every
// add on the last (MiniLM's 384 rows: 24 dependent adds per pass).
template <typename F>
float SumRows(const float* c, int rows, F f) {
  Vec s0 = {}, s1 = {}, s2 = {}, s3 = {};
  int r = 0;
  for (; r + 4 * kLanes <= rows; r += 4 * kLanes) {
    s0 += f(Load(c + r));
    s1 += f(Load(c + r + kLanes));
    s2 += f(Load(c + r + 2 * kLanes));
    s3 += f(Load(c + r + 3 * kLanes));
  }
  for (; r + kLanes <= rows; r += kLanes) s0 += f(Load(c + r));
  if (r < rows) {
    // f(0) need not be 0: the lanes past the end are dropped, not loaded.
    const Vec tail = f(LoadPartial(c + r, rows - r));
    for (int i = 0; i < rows - r; ++i) s1[i] += tail[i];
  }
  return HorizontalSum((s0 + s1) + (s2 + s3));
}

void LayerNormColumns(float* x, ptrdiff_t ldx, const float* res, ptrdiff_t ldr,
                      int rows, int cols, const float* gamma, const float* beta,
                      float eps) {
  const float inv_rows = 1.0f / static_cast<float>(rows);
  for (int col = 0; col < cols; ++col) {
    float* c = x + col * ldx;
    if (res != nullptr) {
      const float* a = res + col * ldr;
      int r = 0;
      for (; r + kLanes <= rows; r += kLanes)
        Store(c + r, Load(c + r) + Load(a + r));
      for (; r < rows; ++r) c[r] += a[r];
    }
    const float mean = SumRows(c, rows, [](Vec v) { return v; }) * inv_rows;
    const Vec m = Splat(mean);
    const float var = SumRows(c, rows,
                              [m](Vec v) {
                                const Vec d = v - m;
                                return d * d;
                              }) *
                      inv_rows;
    // 1 / sqrt without libm (this file calls no library function): Newton
    // steps from the exponent-halving estimate; three reach float precision.
    const float v = var + eps;
    int32_t bits;
    __builtin_memcpy(&bits, &v, sizeof bits);
    bits = 0x5f3759df - (bits >> 1);
    float inv;
    __builtin_memcpy(&inv, &bits, sizeof inv);
    for (int k = 0; k < 3; ++k) inv = inv * (1.5f - 0.5f * v * inv * inv);
    const Vec is = Splat(inv);
    int r = 0;
    for (; r + kLanes <= rows; r += kLanes) {
      Store(c + r, (Load(c + r) - m) * is * Load(gamma + r) + Load(beta + r));
    }
    for (; r < rows; ++r) c[r] = (c[r] - mean) * inv * gamma[r] + beta[r];
  }
}

}  // namespace

extern const KernelTable kTable;
const KernelTable kTable = {CTXEMBED_KERNEL_ISA,
                            kLanes,
                            PackedFloats,
                            Pack,
                            GemmScratchFloats,
                            Gemm,
                            GemmRows,
                            LstmCell,
                            GruCell,
                            Apply<Logistic>,
                            Apply<Tanh>,
                            Apply<Gelu>,
                            SoftmaxRows,
                            LayerNormColumns};

}  // namespace CTXEMBED_KERNEL_NS
}  // namespace ctxembed
