// A std::vector whose storage starts on a cache line (64 bytes), for the
// operands the kernels (model/kernel_table.h) read a whole vector register
// at a time: from a 16-byte aligned start (malloc's), every 64-byte load
// of the AVX-512 kernels spans two cache lines.
#ifndef CTXEMBED_MODEL_ALIGNED_VECTOR_H_
#define CTXEMBED_MODEL_ALIGNED_VECTOR_H_

#include <cstddef>
#include <new>
#include <vector>

namespace ctxembed {

inline constexpr std::size_t kCacheLineBytes = 64;

template <typename T>
struct CacheLineAllocator {
  using value_type = T;

  CacheLineAllocator() = default;
  template <typename U>
  explicit CacheLineAllocator(const CacheLineAllocator<U>&) {}

  T* allocate(std::size_t n) {
    return static_cast<T*>(
        ::operator new (n * sizeof(T), std::align_val_t{kCacheLineBytes}));
  }
  void deallocate(T* p, std::size_t /*n*/) {
    ::operator delete (p, std::align_val_t{kCacheLineBytes});
  }

  friend bool operator==(const CacheLineAllocator&, const CacheLineAllocator&) {
    return true;
  }
  friend bool operator!=(const CacheLineAllocator&, const CacheLineAllocator&) {
    return false;
  }
};

template <typename T>
using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_ALIGNED_VECTOR_H_
