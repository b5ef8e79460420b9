// The per-cell pointwise kernels: one file per cell family in this folder (rnn.cpp — with IndRNN —, lstm.cpp,
// gru.cpp, lstm_peephole.cpp), each a `<Family>Kernel<T>` with a `forward` and a `backward` over the batch rows
// b0..b1 of one time step. The matrix product of the step is not here (products.h); the time loop that calls both is
// loops.cpp.
//
// A NEW CELL'S KERNEL GOES HERE. To give a cell a compiled kernel:
//   1. kernels/<family>.cpp: its `forward` and `backward` (gru.cpp is the model to copy: saved activations,
//      an auxiliary (T, B, H) tensor, recording through `Seen`), built from pointwise_math.h, and the two
//      explicit instantiations (float, double) at its end. The math is the cell's Python step in
//      recurrent/cells.py, which stays the reference the kernel is tested against.
//   2. This header: the kernel's declaration below, and a code in `CellKind` equal to the `native_kind` of the
//      cell's row in recurrent/cells.py.
//   3. loops.cpp: one branch in `forward` and one in `backward` (the tensors it saves, its per-step product).
// native.py compiles every .cpp under _ext/ into the one extension and keys the build on every file, so a new
// file needs no build change. A cell without a kernel runs the engine's Python loop and needs none of this.
#pragma once

#include <cstdint>

namespace rnnlab {

// The cell's code in the compiled loop: recurrent/cells.py's `native_kind`.
enum CellKind : int64_t {
  kRnnTanh = 0,
  kRnnRelu = 1,
  kRnnLinear = 2,
  kLstm = 3,
  kGru = 4,
  kIndRnn = 5,
  kPeepholeLstm = 6,
};

// Recording targets of one step: per-sample norms (double) and, optionally, the vectors themselves.
template <typename T>
struct Seen {
  double* norm_h = nullptr;  // (B,) ‖∂L/∂h_t‖₂, or null when not recording
  double* norm_c = nullptr;  // (B,) ∂L/∂c_t (LSTM)
  T* vec_h = nullptr;        // (B, H) when vectors are kept
};

// Vanilla RNN (kinds kRnnTanh, kRnnRelu, kRnnLinear): h = activation(pre + bias) for rows b0..b1 of (B, H).
// IndRNN (kIndRnn) is the ReLU one with u (H,) given: h = ReLU(pre + bias + u ⊙ h_prev), no matrix product in the
// step (loops.cpp skips it); for the dense cells u and h_prev are null (the product is already in pre).
template <typename T>
struct RnnKernel {
  static void forward(int64_t kind, const T* pre, const T* bias, const T* u, const T* h_prev, T* h, int64_t b0,
                      int64_t b1, int64_t H);
  // d_pre = ∂L/∂pre from h_new and dh + d_out (the recurrent and the output part of ∂L/∂h_t). With u, dh is
  // replaced by ∂L/∂h_{t−1} = d_pre ⊙ u; without, it is left for the loop's product.
  static void backward(int64_t kind, const T* h_new, const T* u, T* dh, const T* d_out, T* d_pre,
                       const Seen<T>& seen, int64_t b0, int64_t b1, int64_t H);
};

// LSTM, torch.nn's gate order (i, f, g, o).
template <typename T>
struct LstmKernel {
  // pre (B, 4H) without bias, bias (4H) → activated gates in place, c_new, tanh(c_new), h_new.
  static void forward(T* pre, const T* bias, const T* c_prev, T* c_new, T* tanh_c, T* h_new, int64_t b0,
                      int64_t b1, int64_t H);
  // dh: ∂L/∂h_t from step t+1 (B, H), d_out added here; dc: ∂L/∂c_t from t+1, replaced by ∂L/∂c_{t-1}.
  // Writes d_pre (B, 4H) and, when recording, the totals seen at this step.
  static void backward(const T* acts, const T* tanh_c, const T* c_prev, T* dh, const T* d_out, T* dc, T* d_pre,
                       const Seen<T>& seen, int64_t b0, int64_t b1, int64_t H);
};

// The LSTM with an output-gate peephole through a full matrix V_o (the uRNN paper's): each step's pointwise work is
// split around the product with V_o, which loops.cpp runs between the two passes.
template <typename T>
struct PeepholeLstmKernel {
  // pre (B, 4H) without bias, bias (4H) → i, f, g activated in place and c_new; o's block is left as it is.
  static void forward_cell(T* pre, const T* bias, const T* c_prev, T* c_new, int64_t b0, int64_t b1, int64_t H);
  // peep = c_new V_oᵀ (B, H) → o activated in place, tanh(c_new), h_new.
  static void forward_out(T* pre, const T* bias, const T* peep, const T* c_new, T* tanh_c, T* h_new, int64_t b0,
                          int64_t b1, int64_t H);
  // dh: ∂L/∂h_t from step t+1, replaced by the total (d_out added); writes d_o (B, H) and d_pre's o block.
  static void backward_out(const T* acts, const T* tanh_c, T* dh, const T* d_out, T* d_o, T* d_pre, int64_t b0,
                           int64_t b1, int64_t H);
  // dc_peep = d_o V_o (B, H), the peephole's part of ∂L/∂c_t; dc: ∂L/∂c_t from t+1, replaced by ∂L/∂c_{t-1}.
  // Writes d_pre's i, f, g blocks and, when recording, the totals seen at this step.
  static void backward_cell(const T* acts, const T* tanh_c, const T* c_prev, const T* dh, const T* dc_peep, T* dc,
                            T* d_pre, const Seen<T>& seen, int64_t b0, int64_t b1, int64_t H);
};

// GRU, torch.nn's gate order (r, z, n).
template <typename T>
struct GruKernel {
  // x_pre = x W_ih^T (B, 3H) and its bias bx (3H), h_pre = h W_hh^T (B, 3H) and its bias bh (3H)
  // → acts (r, z, n), aux = the recurrent part of n before the reset gate (h W_hn^T + b_hn), h_new.
  static void forward(const T* x_pre, const T* bx, const T* h_pre, const T* bh, const T* h, T* acts, T* aux,
                      T* h_new, int64_t b0, int64_t b1, int64_t H);
  // dh (B, H) is the recurrent part of ∂L/∂h_t; d_out added here. Writes d_x_pre, d_h_pre (B, 3H) and replaces
  // dh, element by element, with ∂L/∂h_t · z: the part of ∂L/∂h_{t-1} that bypasses W_hh (the caller then adds
  // d_h_pre W_hh in place).
  static void backward(const T* acts, const T* aux, const T* h_prev, T* dh, const T* d_out, T* d_x_pre,
                       T* d_h_pre, const Seen<T>& seen, int64_t b0, int64_t b1, int64_t H);
};

}  // namespace rnnlab
