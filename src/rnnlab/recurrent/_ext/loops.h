// The time loops of one layer: the forward over all steps, and the full BPTT backward. The math is exactly that
// of recurrent/cells.py (the slow reference kept beside this fast path, and tested against it): same gate
// layout as torch.nn, same saved tensors.
//
// Layout (all contiguous): x_pre (T, B, G*H), hs (T+1, B, H), cs (T+1, B, H), acts (T, B, G*H),
// aux (T, B, H): LSTM tanh(c_t), GRU the recurrent part of n before the reset gate (h W_hn^T + b_hn).
// kind: the cell's `CellKind` (kernels/kernels.h).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include <cstdint>
#include <vector>

namespace rnnlab {

// x_pre: the input projection x W_ih^T (T, B, G*H), the engine's own temporary (consumed in place). Returns
// {hs, cs (LSTM), acts (LSTM, GRU), aux (LSTM, GRU)}, undefined tensors where a cell keeps none.
std::vector<at::Tensor> forward(int64_t kind, const at::Tensor& x_pre_in, const at::Tensor& h0, const at::Tensor& c0,
                                const at::Tensor& w_hh, const c10::optional<at::Tensor>& b_hh,
                                const c10::optional<at::Tensor>& b_x);

// record: 0 nothing, 1 per-sample norms (T, B) in double, 2 also the vectors ∂L/∂h_t (T, B, H). Returns
// {d_x_pre, d_h_pre, ∂L/∂h_0, ∂L/∂c_0 (LSTM), norm_h, norm_c (LSTM), vec_h}, undefined where not computed.
std::vector<at::Tensor> backward(int64_t kind, const at::Tensor& hs, const c10::optional<at::Tensor>& cs,
                                 const c10::optional<at::Tensor>& acts, const c10::optional<at::Tensor>& aux,
                                 const at::Tensor& w_hh, const at::Tensor& d_out_in, const at::Tensor& dh_last,
                                 const c10::optional<at::Tensor>& dc_last, int64_t record);

}  // namespace rnnlab
