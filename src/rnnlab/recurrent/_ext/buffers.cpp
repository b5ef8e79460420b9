// The pool of reused scratch buffers (buffers.h).

#include "buffers.h"

#include <ATen/ops/empty.h>
#include <c10/core/InferenceMode.h>

#include <iterator>

namespace rnnlab {

at::Tensor ScratchPool::get(at::IntArrayRef sizes, const at::TensorOptions& options) {
  int64_t numel = 1;
  for (int64_t s : sizes) numel *= s;
  const int64_t bytes = numel * int64_t(c10::elementSize(c10::typeMetaToScalarType(options.dtype())));
  if (bytes < kMinBytes || options.device().type() != c10::DeviceType::CPU) return at::empty(sizes, options);
  // Always a normal tensor, even when first asked for inside torch.inference_mode: an inference tensor can
  // never be written again outside it, and the next training step would fail on the reused buffer.
  c10::InferenceMode not_inference(false);
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = buffers_.begin(); it != buffers_.end(); ++it) {
    if (it->numel() == numel && it->dtype() == options.dtype() && it->storage().use_count() == 1) {
      at::Tensor hit = *it;
      buffers_.splice(buffers_.begin(), buffers_, it);  // most recently used first
      return hit.view(sizes);
    }
  }
  at::Tensor fresh = at::empty({numel}, options);
  buffers_.push_front(fresh);
  held_ += bytes;
  // Over the cap: drop the least recently used buffers nobody else holds.
  for (auto it = std::prev(buffers_.end()); held_ > kMaxBytes && it != buffers_.begin();) {
    auto here = it--;
    if (here->storage().use_count() == 1) {
      held_ -= here->numel() * int64_t(here->element_size());
      buffers_.erase(here);
    }
  }
  return fresh.view(sizes);
}

int64_t ScratchPool::release() {
  std::lock_guard<std::mutex> lock(mutex_);
  const int64_t before = held_;
  for (auto it = buffers_.begin(); it != buffers_.end();) {
    if (it->storage().use_count() == 1) {
      held_ -= it->numel() * int64_t(it->element_size());
      it = buffers_.erase(it);
    } else {
      ++it;
    }
  }
  return before - held_;
}

int64_t ScratchPool::held() {
  std::lock_guard<std::mutex> lock(mutex_);
  return held_;
}

ScratchPool& scratch() {
  static ScratchPool pool;
  return pool;
}

int64_t release_scratch() { return scratch().release(); }
int64_t scratch_bytes() { return scratch().held(); }
at::Tensor scratch_like(at::IntArrayRef sizes, const at::Tensor& like) { return scratch().get(sizes, like.options()); }

}  // namespace rnnlab
