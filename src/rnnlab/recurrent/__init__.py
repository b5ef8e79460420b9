"""The recurrent modules and their engine: drop-in RNN/LSTM/GRU, the BPTT engine that records ∂L/∂h_t,
initialisation schemes and gradient-flow diagnostics. Knows nothing of tasks, training or storage.

The rooms, each importing only the ones before it:

- `cells/` the cell table and one file per cell family (a step and its hand-written backward); `native`
  the compiled loop; `validation` argument and input checks; `recorder` what the engine hands ∂L/∂h_t to;
  `denormals`, `gemm`, `loops` the engine's parts;
- `engine` the BPTT engine for a stack; `projected` the LSTM with a projection; `split_forward` the forwards
  run as several calls;
- `modules` RNN/LSTM/GRU, whose `_run` dispatches to the three above; `convert`; `recording`
  (`record_gradients`); `omega` (Pascanu's Ω regulariser, from a recorded backward); `init`; `figures` (the
  gradient pictures); `diagnostics`; `monitor`.
"""
