// rnnlab's compiled BPTT engine: the time loops in C++, per step one matrix product and one fused, vectorised
// pointwise pass, instead of ~10-20 separate tensor operations dispatched from Python. One extension, built by
// recurrent/native.py from every .cpp file of this folder (its build is keyed on every file here). This file is
// its face: the functions Python sees. The files, one concept each:
//
//   loops.h/.cpp          the time loops of one layer, forward and full BPTT backward; the saved tensors' layout
//   kernels/              the per-cell pointwise kernels, one file per cell family (rnn, lstm, gru, …) and what
//                         they share (pointwise_math.h); kernels.h says how to add a new cell's kernel
//   products.h/.cpp       the matrix products: whole-sequence (`gemm`, `matmul`) and per-step (`StepProduct`)
//   cpu_dispatch.h/.cpp   which library and path run each product on this CPU (vendor, oneDNN, MKL, switches)
//   threads.h             bare OpenMP regions carrying the denormal setting; batch rows split over them
//   buffers.h/.cpp        the pool of reused scratch buffers
//   denormals.h/.cpp      flush-to-zero read here and set in every thread of the OpenMP pool
//
// The measurements behind the engine's choices: benchmarks/results/engine-notes.md.

// torch/python.h, not torch/extension.h: the bindings need no C++ frontend (torch/all.h), which would double this
// file's compile time.
#include <torch/python.h>

#include "buffers.h"
#include "cpu_dispatch.h"
#include "denormals.h"
#include "loops.h"
#include "products.h"
#include "threads.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  using namespace rnnlab;
  m.def("forward", &forward, "time loop forward of one layer");
  m.def("backward", &backward, "full BPTT backward of one layer");
  m.def("matmul", &matmul, "a · b, by oneDNN for large float32 products; into_scratch: a reused buffer");
  m.def("denormals_flushed", &denormals_flushed, "1 if this thread flushes denormals, 0 if not, -1: unknown");
  m.def("set_pool_denormals", &set_pool_denormals, "flush denormals (or not) in every OpenMP pool thread");
  m.def("pool_denormals_flushed", &pool_denormals_flushed, "[pool threads flushing denormals, pool threads]");
  m.def("release_scratch", &release_scratch, "free the reusable buffers nobody holds; returns the bytes freed");
  m.def("scratch_bytes", &scratch_bytes, "bytes held by the reusable buffers");
  m.def("scratch", &scratch_like, "an uninitialised reusable buffer of this size with like's dtype and device");
  m.def("set_gemm", &set_gemm, "'auto' (oneDNN on AMD CPUs, where it pays), 'onednn' or 'aten'");
  m.def("cpu_vendor", &cpu_vendor, "the CPU's vendor string (CPUID), '' where unknown");
  m.def("gemm_backend", &gemm_backend, "'onednn' or 'aten'");
  m.def("step_path", &step_path, "the per-step product's path for (dtype, batch, hidden, gates[, forward, steps])",
        py::arg("dtype"), py::arg("batch"), py::arg("hidden"), py::arg("gates"), py::arg("forward") = true,
        py::arg("steps") = 100);
  m.def("set_brgemm", &set_brgemm, "whether float32 steps may take oneDNN's micro-kernel: 'auto' (AMD CPUs), 'on', 'off'");
  m.def("set_backward_split", &set_backward_split, "whether the backward may split: 'auto' (AMD CPUs), 'on', 'off'");
  m.def("set_pointwise_grain", &set_pointwise_grain, "the least pointwise elements per thread (for benchmarks)");
  m.def("set_step_split", &set_step_split, "the largest batch that takes the split path (0: never)");
}
