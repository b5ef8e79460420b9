"""The recurrent modules and their engine: drop-in RNN/LSTM/GRU, the BPTT engine that records ∂L/∂h_t,
initialisation schemes and gradient-flow diagnostics. Knows nothing of tasks, training or storage."""
