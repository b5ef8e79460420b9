// Denormal control: whether this thread flushes denormal floats, and flushing them in every thread of the
// OpenMP pool, where the GEMMs of a training step run.
#pragma once

#include <cstdint>
#include <vector>

namespace rnnlab {

// Whether this thread flushes denormals (flush-to-zero or denormals-are-zero set in MXCSR, as
// torch.set_flush_denormal(True) sets both): 1 or 0, or -1 where that cannot be read (not x86). Reading the
// register costs nanoseconds, where a tensor probe costs microseconds twice per training step.
int64_t denormals_flushed();

// Flush-to-zero and denormals-are-zero on (or off) in every thread of the OpenMP pool, the caller included.
void set_pool_denormals(bool flush);

// How many threads of the OpenMP pool (the caller included) flush denormals, and of how many; for tests.
std::vector<int64_t> pool_denormals_flushed();

}  // namespace rnnlab
