// A weight matrix packed once for the GEMM kernel of model/kernel_table.h,
// so the recurrent step W_hh * h does not repack W_hh at every time step.
#ifndef CTXEMBED_MODEL_PACKED_MATRIX_H_
#define CTXEMBED_MODEL_PACKED_MATRIX_H_

#include <Eigen/Core>
#include <cstdint>
#include <vector>

#include "model/aligned_vector.h"
#include "model/kernel_table.h"
#include "model/kernels.h"

namespace ctxembed {

// How weights are stored and multiplied (config.json "precision").
//   kFp32: float32 throughout (the default).
//   kBf16: weights rounded to bfloat16; with AVX512_BF16 the right-hand
//     side is rounded too and VDPBF16PS sums the products in fp32 (half
//     the weight memory, twice the multiply rate); without it the rounded
//     weights are multiplied by the fp32 kernel.
//   kInt8: dynamic quantization (as PyTorch's quantize_dynamic and ONNX
//     Runtime's DynamicQuantizeMatMul): weights int8 with a scale per row;
//     with the v4 kernels on a CPU with AVX512_VNNI each right-hand-side
//     column is quantized to uint8 as it is multiplied and VPDPBUSD sums
//     exactly in int32 (a quarter of the weight memory, four times the
//     multiply rate); elsewhere the int8-rounded weights are multiplied by
//     the fp32 kernel.
//   State, activations and accumulation outside the product stay fp32.
enum class Precision { kFp32, kBf16, kInt8 };

// fp32 -> the nearest bfloat16, returned as fp32.
float RoundToBf16(float x);

// Each row of w rounded to int8 steps of max |row| / 127 (symmetric),
// returned as fp32: the weights kInt8 multiplies.
Eigen::MatrixXf RoundToInt8Rows(const Eigen::MatrixXf& w);

// The order a product reads W's rows in (KernelTable::gemm's `backward`):
// the same result bit for bit. A caller that multiplies by one W at every
// step alternates them, so that each pass starts where the last one ended,
// on the rows still in the core's cache. The reduced-precision kernels
// read W first to last in either case.
enum class RowOrder { kForward, kBackward };

// The order for pass `pass` (0, 1, 2, ...) of a product repeated with one
// W: forward on even passes, backward on odd ones.
inline RowOrder AlternatingRowOrder(int64_t pass) {
  return pass % 2 == 0 ? RowOrder::kForward : RowOrder::kBackward;
}

// Immutable after construction; thread-safe (MultiplyAdd's scratch is the
// caller's). Keeps the kernel it was packed for: the packed layout is that
// kernel's.
class PackedMatrix {
 public:
  PackedMatrix() = default;
  explicit PackedMatrix(const Eigen::MatrixXf& w,
                        const KernelTable& kernels = DefaultKernels(),
                        Precision precision = Precision::kFp32);

  Eigen::Index rows() const { return rows_; }
  Eigen::Index cols() const { return cols_; }
  const KernelTable& kernels() const { return *kernels_; }
  // True if MultiplyAdd runs the bf16 kernel (AVX512_BF16).
  bool uses_bf16_kernel() const {
    return precision_ == Precision::kBf16 && reduced_ != nullptr;
  }
  // True if MultiplyAdd runs the int8 kernel (AVX512_VNNI).
  bool uses_int8_kernel() const {
    return precision_ == Precision::kInt8 && reduced_ != nullptr;
  }

  // out += W * x, where x is [cols x n] and out is [rows x n], both
  // column-major with contiguous columns. `rhs_scratch` holds the packed x;
  // it grows as needed and is reused.
  void MultiplyAdd(const Eigen::Ref<const Eigen::MatrixXf>& x,
                   Eigen::Ref<Eigen::MatrixXf> out,
                   Eigen::VectorXf& rhs_scratch,
                   RowOrder order = RowOrder::kForward) const;

  // Rows of the packed layout's panels (MultiplyAddRows starts on a multiple
  // of it); 0 for an empty matrix.
  int row_alignment() const;
  // out += W[first, first + count) * x: `out` has `count` rows; `first` a
  // multiple of row_alignment(), and first + count <= rows().
  void MultiplyAddRows(int first, int count,
                       const Eigen::Ref<const Eigen::MatrixXf>& x,
                       Eigen::Ref<Eigen::MatrixXf> out,
                       Eigen::VectorXf& rhs_scratch) const;

  // out = W * x + bias (bias: rows() floats, added to every column), in the
  // kernel's store: out's old values are not read, and bias and product
  // make one pass over out. AffineRows: rows [first, first + count) of it,
  // `bias` pointing at the bias of row `first`.
  void Affine(const Eigen::Ref<const Eigen::MatrixXf>& x, const float* bias,
              Eigen::Ref<Eigen::MatrixXf> out, Eigen::VectorXf& rhs_scratch,
              RowOrder order = RowOrder::kForward) const;
  void AffineRows(int first, int count,
                  const Eigen::Ref<const Eigen::MatrixXf>& x, const float* bias,
                  Eigen::Ref<Eigen::MatrixXf> out,
                  Eigen::VectorXf& rhs_scratch) const;

 private:
  // MultiplyAddRows with bias null, AffineRows otherwise.
  void Run(int first, int count, const Eigen::Ref<const Eigen::MatrixXf>& x,
           const float* bias, Eigen::Ref<Eigen::MatrixXf> out,
           Eigen::VectorXf& rhs_scratch, RowOrder order) const;

  Eigen::Index rows_ = 0, cols_ = 0;
  const KernelTable* kernels_ = nullptr;
  Precision precision_ = Precision::kFp32;
  // Set: packed_ is this kernel's (bf16 or int8); null: kernels_'s.
  const ReducedGemm* reduced_ = nullptr;
  AlignedVector<float> packed_;  // on a cache line: see aligned_vector.h
};

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_PACKED_MATRIX_H_
