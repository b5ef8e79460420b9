// The time loops of one layer, forward and backward (loops.h): per step the per-step product (products.h) and
// the cell's pointwise kernel (kernels/), rows split over the threads (threads.h), temporaries from the pool
// (buffers.h). A new cell with a kernel adds one branch to each loop (kernels/kernels.h says what else).

#include "loops.h"

#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/core/GradMode.h>

#include <optional>

#include "buffers.h"
#include "cpu_dispatch.h"
#include "kernels/kernels.h"
#include "products.h"
#include "threads.h"

namespace rnnlab {

// x_pre = x W_ih^T without bias: b_x (added to every step's pre-activation) and b_hh (GRU: added to h W_hh^T)
// are added in the pointwise pass, which saves a pass over the whole (T, B, G·H) projection.
// Inside the time loop everything is a raw pointer at a fixed stride: a tensor view per step and operand
// (`hs[t]`) costs more than the whole step at batch 1 (benchmarks/results/engine-notes.md, "The time loops").
std::vector<at::Tensor> forward(int64_t kind, const at::Tensor& x_pre_in, const at::Tensor& h0, const at::Tensor& c0,
                                const at::Tensor& w_hh, const c10::optional<at::Tensor>& b_hh,
                                const c10::optional<at::Tensor>& b_x) {
  at::NoGradGuard no_grad;
  TORCH_CHECK(x_pre_in.device().is_cpu(), "the compiled time loop runs on CPU tensors only");
  TORCH_CHECK(x_pre_in.is_contiguous(), "x_pre must be contiguous");
  const at::Tensor x_pre = x_pre_in;
  const int64_t T = x_pre.size(0), B = x_pre.size(1), H = h0.size(-1);
  const bool peephole = kind == kPeepholeLstm, lstm = kind == kLstm || peephole;
  const bool gru = kind == kGru, diagonal = kind == kIndRnn;
  const int64_t G = lstm ? 4 : (gru ? 3 : 1);
  at::Tensor hs = scratch().get({T + 1, B, H}, x_pre.options());
  hs[0].copy_(h0);
  at::Tensor cs, acts, aux, h_pre;
  if (lstm) {
    cs = scratch().get({T + 1, B, H}, x_pre.options());
    cs[0].copy_(c0);
  }
  if (lstm) {
    // The input projection is consumed in place: x_pre[t] += h W_hh^T, then activated; it becomes `acts`.
    // (x_pre is the engine's own temporary, never the caller's tensor.)
    acts = x_pre;
    aux = scratch().get({T, B, H}, x_pre.options());
  } else if (gru) {
    acts = scratch().get({T, B, G * H}, x_pre.options());
    aux = scratch().get({T, B, H}, x_pre.options());
  }
  if (gru) h_pre = at::empty({B, G * H}, x_pre.options());
  // The peephole LSTM's W_hh is (5H, H): the gates' four blocks, then V_o, which multiplies the new c_t.
  const at::Tensor w_gates = peephole ? w_hh.narrow(0, 0, G * H) : w_hh;
  at::Tensor peep = peephole ? at::empty({B, H}, x_pre.options()) : at::Tensor();  // c_t V_oᵀ
  // Missing biases are zeros (x + 0 = x exactly), so the pointwise kernels need no second version.
  const at::Tensor zeros = at::zeros({G * H}, x_pre.options());
  const at::Tensor bias_x = b_x.has_value() ? b_x->contiguous() : zeros;
  const at::Tensor bias_h = b_hh.has_value() ? b_hh->contiguous() : zeros;
  const int64_t sH = B * H, sG = B * G * H;  // strides of one step in (·, B, H) and (·, B, G·H) tensors
  const at::Tensor u = diagonal ? w_hh.contiguous() : at::Tensor();  // IndRNN: u (H,), no product
  const int64_t activation = diagonal ? kRnnRelu : kind;               // IndRNN: the ReLU RNN's kernel, with u
  SmallStepThreads threads(diagonal ? B * H : B * H * G * H);
  AT_DISPATCH_FLOATING_TYPES(x_pre.scalar_type(), "rnnlab_forward", [&] {
    const scalar_t* up = diagonal ? u.data_ptr<scalar_t>() : nullptr;
    const std::optional<StepProduct<scalar_t>> product =
        diagonal ? std::nullopt : std::make_optional<StepProduct<scalar_t>>(w_gates, B, /*forward=*/true, T);
    const std::optional<StepProduct<scalar_t>> peep_product =
        peephole ? std::make_optional<StepProduct<scalar_t>>(w_hh.narrow(0, G * H, H), B, /*forward=*/true, T)
                 : std::nullopt;
    scalar_t* h = hs.data_ptr<scalar_t>();
    scalar_t* xp = x_pre.data_ptr<scalar_t>();
    const scalar_t *bx = bias_x.data_ptr<scalar_t>(), *bh = bias_h.data_ptr<scalar_t>();
    for (int64_t t = 0; t < T; ++t) {
      scalar_t* h_new = h + (t + 1) * sH;
      const scalar_t* h_old = h + t * sH;
      if (peephole) {
        scalar_t* pre = xp + t * sG;
        (*product)(h_old, pre, true);
        scalar_t* c = cs.data_ptr<scalar_t>();
        scalar_t* ax = aux.data_ptr<scalar_t>() + t * sH;
        scalar_t* pp = peep.data_ptr<scalar_t>();
        for_rows(B, 3 * H, [&](int64_t b0, int64_t b1) {
          PeepholeLstmKernel<scalar_t>::forward_cell(pre, bx, c + t * sH, c + (t + 1) * sH, b0, b1, H);
        });
        (*peep_product)(c + (t + 1) * sH, pp, false);
        for_rows(B, H, [&](int64_t b0, int64_t b1) {
          PeepholeLstmKernel<scalar_t>::forward_out(pre, bx, pp, c + (t + 1) * sH, ax, h_new, b0, b1, H);
        });
      } else if (lstm) {
        scalar_t* pre = xp + t * sG;
        (*product)(h_old, pre, true);
        scalar_t* c = cs.data_ptr<scalar_t>();
        scalar_t* ax = aux.data_ptr<scalar_t>() + t * sH;
        for_rows(B, 4 * H, [&](int64_t b0, int64_t b1) {
          LstmKernel<scalar_t>::forward(pre, bx, c + t * sH, c + (t + 1) * sH, ax, h_new, b0, b1, H);
        });
      } else if (gru) {
        scalar_t* hp = h_pre.data_ptr<scalar_t>();
        (*product)(h_old, hp, false);
        scalar_t* a = acts.data_ptr<scalar_t>() + t * sG;
        scalar_t* ax = aux.data_ptr<scalar_t>() + t * sH;
        const scalar_t* x_t = xp + t * sG;
        for_rows(B, 3 * H, [&](int64_t b0, int64_t b1) {
          GruKernel<scalar_t>::forward(x_t, bx, hp, bh, h_old, a, ax, h_new, b0, b1, H);
        });
      } else {
        scalar_t* pre = xp + t * sG;
        if (!diagonal) (*product)(h_old, pre, true);  // in place: x_pre is the engine's own temporary
        for_rows(B, H, [&](int64_t b0, int64_t b1) {
          RnnKernel<scalar_t>::forward(activation, pre, bx, up, diagonal ? h_old : nullptr, h_new, b0, b1, H);
        });
      }
    }
  });
  return {hs, lstm ? cs : at::Tensor(), acts.defined() ? acts : at::Tensor(), aux.defined() ? aux : at::Tensor()};
}

std::vector<at::Tensor> backward(int64_t kind, const at::Tensor& hs, const c10::optional<at::Tensor>& cs,
                                 const c10::optional<at::Tensor>& acts, const c10::optional<at::Tensor>& aux,
                                 const at::Tensor& w_hh, const at::Tensor& d_out_in, const at::Tensor& dh_last,
                                 const c10::optional<at::Tensor>& dc_last, int64_t record) {
  // record: 0 nothing, 1 per-sample norms (T, B) in double, 2 also the vectors ∂L/∂h_t (T, B, H).
  at::NoGradGuard no_grad;
  TORCH_CHECK(d_out_in.device().is_cpu(), "the compiled time loop runs on CPU tensors only");
  const at::Tensor d_out = d_out_in.contiguous();
  const int64_t T = d_out.size(0), B = d_out.size(1), H = d_out.size(2);
  const bool peephole = kind == kPeepholeLstm, lstm = kind == kLstm || peephole;
  const bool gru = kind == kGru, diagonal = kind == kIndRnn;
  const int64_t G = lstm ? 4 : (gru ? 3 : 1);
  const auto opts = d_out.options();
  const at::Tensor w_gates = peephole ? w_hh.narrow(0, 0, G * H) : w_hh;
  // The peephole's d_o (B, H) and its part of ∂L/∂c_t, d_o V_o (B, H).
  at::Tensor d_o = peephole ? at::empty({B, H}, opts) : at::Tensor();
  at::Tensor dc_peep = peephole ? at::empty({B, H}, opts) : at::Tensor();
  at::Tensor d_x_pre = scratch().get({T, B, G * H}, opts);
  at::Tensor d_h_pre = gru ? scratch().get({T, B, G * H}, opts) : d_x_pre;
  const auto dopts = opts.dtype(at::kDouble);
  at::Tensor norm_h = record ? at::empty({T, B}, dopts) : at::Tensor();
  at::Tensor norm_c = record && lstm ? at::empty({T, B}, dopts) : at::Tensor();
  at::Tensor vec_h = record == 2 ? at::empty({T, B, H}, opts) : at::Tensor();
  at::Tensor dh = dh_last.contiguous().clone();  // recurrent part of ∂L/∂h_t
  at::Tensor dc = lstm ? dc_last->contiguous().clone() : at::Tensor();
  const int64_t sH = B * H, sG = B * G * H;
  const at::Tensor u = diagonal ? w_hh.contiguous() : at::Tensor();
  const int64_t activation = diagonal ? kRnnRelu : kind;
  SmallStepThreads threads(diagonal ? B * H : B * H * G * H);
  AT_DISPATCH_FLOATING_TYPES(d_out.scalar_type(), "rnnlab_backward", [&] {
    const scalar_t* up = diagonal ? u.data_ptr<scalar_t>() : nullptr;
    const std::optional<StepProduct<scalar_t>> product =
        diagonal ? std::nullopt : std::make_optional<StepProduct<scalar_t>>(w_gates, B, /*forward=*/false, T);
    const std::optional<StepProduct<scalar_t>> peep_product =
        peephole ? std::make_optional<StepProduct<scalar_t>>(w_hh.narrow(0, G * H, H), B, /*forward=*/false, T)
                 : std::nullopt;
    scalar_t *dhp = dh.data_ptr<scalar_t>(), *dcp = lstm ? dc.data_ptr<scalar_t>() : nullptr;
    const scalar_t *h = hs.data_ptr<scalar_t>(), *dop = d_out.data_ptr<scalar_t>();
    const scalar_t* a = acts.has_value() && acts->defined() ? acts->data_ptr<scalar_t>() : nullptr;
    const scalar_t* ax = aux.has_value() && aux->defined() ? aux->data_ptr<scalar_t>() : nullptr;
    const scalar_t* c = lstm ? cs->data_ptr<scalar_t>() : nullptr;
    scalar_t *dx = d_x_pre.data_ptr<scalar_t>(), *dhh = d_h_pre.data_ptr<scalar_t>();
    for (int64_t t = T - 1; t >= 0; --t) {
      Seen<scalar_t> seen;
      if (record) {
        seen.norm_h = norm_h.data_ptr<double>() + t * B;
        if (lstm) seen.norm_c = norm_c.data_ptr<double>() + t * B;
        if (record == 2) seen.vec_h = vec_h.data_ptr<scalar_t>() + t * sH;
      }
      const scalar_t* d_out_t = dop + t * sH;
      if (peephole) {
        scalar_t* dpre = dx + t * sG;
        scalar_t *dob = d_o.data_ptr<scalar_t>(), *dcpp = dc_peep.data_ptr<scalar_t>();
        for_rows(B, H, [&](int64_t b0, int64_t b1) {
          PeepholeLstmKernel<scalar_t>::backward_out(a + t * sG, ax + t * sH, dhp, d_out_t, dob, dpre, b0, b1, H);
        });
        (*peep_product)(dob, dcpp, false);
        for_rows(B, 3 * H, [&](int64_t b0, int64_t b1) {
          PeepholeLstmKernel<scalar_t>::backward_cell(a + t * sG, ax + t * sH, c + t * sH, dhp, dcpp, dcp, dpre, seen,
                                                      b0, b1, H);
        });
        (*product)(dpre, dhp, false);
      } else if (lstm) {
        scalar_t* dpre = dx + t * sG;
        for_rows(B, 4 * H, [&](int64_t b0, int64_t b1) {
          LstmKernel<scalar_t>::backward(a + t * sG, ax + t * sH, c + t * sH, dhp, d_out_t, dcp, dpre, seen, b0, b1,
                                         H);
        });
        (*product)(dpre, dhp, false);
      } else if (gru) {
        scalar_t *dx_t = dx + t * sG, *dhh_t = dhh + t * sG;
        for_rows(B, 3 * H, [&](int64_t b0, int64_t b1) {
          GruKernel<scalar_t>::backward(a + t * sG, ax + t * sH, h + t * sH, dhp, d_out_t, dx_t, dhh_t, seen, b0, b1,
                                        H);
        });
        (*product)(dhh_t, dhp, true);
      } else {
        scalar_t* dpre = dx + t * sG;
        for_rows(B, H, [&](int64_t b0, int64_t b1) {
          RnnKernel<scalar_t>::backward(activation, h + (t + 1) * sH, up, dhp, d_out_t, dpre, seen, b0, b1, H);
        });
        if (!diagonal) (*product)(dpre, dhp, false);  // IndRNN's kernel did d_pre ⊙ u itself
      }
    }
  });
  return {d_x_pre, d_h_pre, dh, lstm ? dc : at::Tensor(), norm_h, norm_c, vec_h};
}

}  // namespace rnnlab
