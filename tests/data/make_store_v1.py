"""How tests/data/store-v1.db (and its checkpoint folder) was made: with rnnlab at commit 9df0ed2 (schema
version 1, before runs stored their task's facts), so tests can check that a store written by that release
opens, migrates once, reports and resumes. Not run by the tests; kept for the record.

Run from a checkout of that commit: `PYTHONPATH=src python tests/data/make_store_v1.py tests/data/store-v1.db`.
The store holds the study `old` (adding, T = 8: a GRU and a tanh RNN finished, an LSTM interrupted after its
first checkpoint, so it is 'running' with a checkpoint to resume from) and the study `old-text` (one finished
run of the text stream task). The GRU run's memoryless levels are deleted, as in runs stored before rnnlab
recorded them (the migration recomputes them).
"""

import contextlib
import sqlite3
import sys
from pathlib import Path

from rnnlab.lab.environment import environment
from rnnlab.lab.store import Store
from rnnlab.lab.study import make_study
from rnnlab.lab.sweep import run_study
from rnnlab.lab.trainer import Callback, Trainer

TINY = {"task": "adding", "seq_len": 8, "hidden_size": 4, "batch_size": 8, "steps": 20, "eval_every": 10}
OLD = {
    "name": "old",
    "claim": "an old study",
    "source": "tests",
    "defaults": {**TINY, "clip": "global_norm", "clip_threshold": 1.0},
    "variants": [
        {"name": "GRU", "cell": "gru"},
        {"name": "tanh", "cell": "rnn_tanh"},
        {"name": "LSTM", "cell": "lstm"},
    ],
}
OLD_TEXT = {
    "name": "old-text",
    "claim": "an old stream study",
    "source": "tests",
    "defaults": {"task": "text", "seq_len": 5, "hidden_size": 4, "batch_size": 2, "steps": 4, "eval_every": 2},
    "variants": [{"name": "k=5", "cell": "gru"}],
}


class Interrupt(Exception):
    """Stops a run right after its first checkpoint, as a killed sweep would."""


class StopAfterCheckpoint(Callback):
    def on_checkpoint(self, trainer, path):
        raise Interrupt


def main(path: Path) -> None:
    store = Store(path)
    old = make_study(OLD)
    finished, interrupted = old.runs[:2], old.runs[2]
    run_study(make_study({**OLD, "variants": OLD["variants"][:2]}), store, workers=1, progress=False)
    run_id, _ = store.claim_run(
        interrupted.label(), interrupted.canonical(), interrupted.hash(), environment(), old.name
    )
    with contextlib.suppress(Interrupt):
        Trainer(interrupted, checkpoint_path=store.checkpoint_path(run_id), callbacks=[StopAfterCheckpoint()]).run()
    run_study(make_study(OLD_TEXT), store, workers=1, progress=False)
    store.prune_checkpoints()  # as `make publish` does: only the interrupted run keeps its checkpoint
    gru = next(r for r in store.runs(study="old") if r.name == finished[0].label())
    store.close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DELETE FROM metrics WHERE run_id = ? AND name IN ('chance', 'baseline_loss')", (gru.id,))
    db.execute("VACUUM")
    db.close()  # the last connection: SQLite folds the -wal file into the database and deletes it


if __name__ == "__main__":
    main(Path(sys.argv[1]))
