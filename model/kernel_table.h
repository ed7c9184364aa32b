// The hot loops of the recurrent encoders, as a table of plain functions:
// one table per instruction-set level (model/kernels_isa.cc compiled once
// per level), chosen at startup (model/kernels.h).
//
// This header is included by those per-level translation units, so it holds
// declarations only: nothing here may instantiate an inline function or a
// template, or one level's code could be linked into another's calls (see
// kernels_isa.cc).
#ifndef CTXEMBED_MODEL_KERNEL_TABLE_H_
#define CTXEMBED_MODEL_KERNEL_TABLE_H_

#include <cstddef>

namespace ctxembed {

struct KernelTable {
  // "v2", "v3", "v4" (x86-64 levels) or "generic".
  const char* isa;
  // Floats per vector register.
  int lanes;

  // Floats a packed [rows x cols] matrix occupies (rows rounded up to the
  // kernel's panel height).
  size_t (*packed_floats)(int rows, int cols);
  // Packs W, element (r, c) at w[r * row_stride + c * col_stride], into
  // `dst` (packed_floats(rows, cols) floats) for gemm().
  void (*pack)(const float* w, ptrdiff_t row_stride, ptrdiff_t col_stride,
               int rows, int cols, float* dst);
  // Floats of scratch gemm() needs for a right-hand side of n columns.
  size_t (*gemm_scratch_floats)(int cols, int n);
  // out[:, j] += W x[:, j] for j < n. Column j of x is x + j * ldx (cols
  // floats), column j of out is out + j * ldo (rows floats). With `bias`
  // (rows floats), out[:, j] = bias + W x[:, j] instead: out's old values
  // are not read. W is read a block of rows at a time, the blocks first to
  // last, or last to first if `backward`: the same result bit for bit (a
  // row's sum does not depend on the order of the rows). A caller that
  // multiplies by one W larger than the core's L2 step after step (the
  // recurrent W_hh) alternates, so each pass starts on the rows the last
  // one left in cache instead of on those it evicted first.
  void (*gemm)(const float* packed, int rows, int cols, const float* x,
               ptrdiff_t ldx, int n, float* out, ptrdiff_t ldo,
               const float* bias, float* scratch, bool backward);
  // gemm with x k-major and read in place, no packing: column j of x at
  // depth k is x[k * ldx + j] (ldx >= n).
  void (*gemm_rows)(const float* packed, int rows, int cols, const float* x,
                    ptrdiff_t ldx, int n, float* out, ptrdiff_t ldo,
                    const float* bias);

  // One LSTM step over b columns, gates in PyTorch's i, f, g, o order:
  // c = s(f) c + s(i) tanh(g); h = s(o) tanh(c). gates: [4H] per column,
  // ldg apart; c and h: [H] per column, ldh apart.
  void (*lstm_cell)(const float* gates, ptrdiff_t ldg, float* c, float* h,
                    ptrdiff_t ldh, int hidden, int b);
  // One GRU step, PyTorch's r, z, n order: gi = W_i x + b_i, gh = W_h h +
  // b_h (both [3H] per column, ldg apart); r = s(gi_r + gh_r),
  // z = s(gi_z + gh_z), n = tanh(gi_n + r gh_n), h = (1 - z) n + z h
  // (h taken as zero if `first`).
  void (*gru_cell)(const float* gi, const float* gh, ptrdiff_t ldg, float* h,
                   ptrdiff_t ldh, int hidden, int b, bool first);

  // In place over n floats: 1 / (1 + exp(-x)), tanh(x).
  void (*logistic)(float* x, ptrdiff_t n);
  void (*tanh)(float* x, ptrdiff_t n);

  // The transformer's element-wise steps (model/bert_encoder.h).
  // In place over n floats: GELU, x (1 + erf(x / sqrt 2)) / 2, with erf to
  // about 2e-7 absolute.
  void (*gelu)(float* x, ptrdiff_t n);
  // Softmax of scale * each row (scale > 0) of a column-major matrix
  // (element (r, c) at x[r + c * ld]), but for the division: each element
  // replaced by exp(scale * (x - max of its row)), and inv_sums[r] set to 1
  // / the sum of row r. The caller scales later, where fewer values need it
  // (attention: the head's d outputs per query, not its len weights).
  void (*softmax_rows)(float* x, ptrdiff_t ld, int rows, int cols, float scale,
                       float* inv_sums);
  // Each column x_j (rows floats, ldx apart) replaced by
  // LayerNorm(x_j + r_j) * gamma + beta (biased variance, eps inside the
  // square root); r (ldr apart) may be null.
  void (*layer_norm_columns)(float* x, ptrdiff_t ldx, const float* r,
                             ptrdiff_t ldr, int rows, int cols,
                             const float* gamma, const float* beta, float eps);
};

// A reduced-precision GEMM (PackedMatrix's kBf16 and kInt8): W packed in
// the kernel's own format (bfloat16 pairs, or int8 with a scale per row),
// x converted as it is packed (rounded to bfloat16, or quantized to uint8
// with a scale and zero point per column), products summed in fp32 (bf16)
// or exactly in int32 (int8). Same contract as KernelTable's gemm, in bytes,
// but for `backward`: W's rows are read first to last.
struct ReducedGemm {
  // Rows per packed panel: rows [p * panel_rows, ...) start at byte
  // p * packed_bytes(1, cols), so whole panels can be multiplied alone.
  int panel_rows;
  size_t (*packed_bytes)(int rows, int cols);
  void (*pack)(const float* w, ptrdiff_t row_stride, ptrdiff_t col_stride,
               int rows, int cols, void* dst);
  size_t (*scratch_bytes)(int cols, int n);
  void (*gemm)(const void* packed, int rows, int cols, const float* x,
               ptrdiff_t ldx, int n, float* out, ptrdiff_t ldo,
               const float* bias, void* scratch);
};

// One table per level compiled into this build (see model/CMakeLists.txt).
namespace kernels_generic {
extern const KernelTable kTable;
}
namespace kernels_v2 {
extern const KernelTable kTable;
}
namespace kernels_v3 {
extern const KernelTable kTable;
}
namespace kernels_v4 {
extern const KernelTable kTable;
}
namespace kernels_bf16 {  // AVX512_BF16
extern const ReducedGemm kGemm;
}
namespace kernels_int8 {  // AVX512_VNNI
extern const ReducedGemm kGemm;
}

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_KERNEL_TABLE_H_
