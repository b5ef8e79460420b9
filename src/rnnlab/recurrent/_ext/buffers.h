// The pool of reused scratch buffers: the engine's large temporaries (pre-activations, states, their gradients:
// tens of MB per layer) are reused across training steps instead of being allocated afresh.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <list>
#include <mutex>

namespace rnnlab {

// Freshly allocated, a buffer over glibc's mmap threshold (≤ 32 MB) comes back as new pages from the kernel on
// every step, and faulting them in costs more than writing them (benchmarks/results/engine-notes.md, "Scratch
// buffers"). A buffer is handed out again only when the pool holds its storage's last reference, so a tensor
// still in use (kept by autograd, by the caller) is never overwritten. Never used for tensors returned to the
// caller.
class ScratchPool {
 public:
  // An uninitialised buffer of these sizes: a reused one where the pool has a free one of the same size and dtype.
  at::Tensor get(at::IntArrayRef sizes, const at::TensorOptions& options);
  // Frees the buffers nobody else holds; returns the bytes freed.
  int64_t release();
  // Bytes held by the pool.
  int64_t held();

 private:
  static constexpr int64_t kMinBytes = int64_t(1) << 20;  // smaller ones come cheaply from malloc's heap
  static constexpr int64_t kMaxBytes = int64_t(1) << 31;  // at most 2 GiB kept between steps
  std::mutex mutex_;
  std::list<at::Tensor> buffers_;
  int64_t held_ = 0;
};

// The process's one pool.
ScratchPool& scratch();

// For Python: free what nobody holds (returns the bytes freed), the bytes held, a buffer shaped `sizes` with
// like's dtype and device.
int64_t release_scratch();
int64_t scratch_bytes();
at::Tensor scratch_like(at::IntArrayRef sizes, const at::Tensor& like);

}  // namespace rnnlab
