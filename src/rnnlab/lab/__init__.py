"""The lab around the recurrent modules: tasks, the model for a task, typed configs, the trainer (with
truncated BPTT over streams and checkpoints), the results store, studies and sweeps."""
