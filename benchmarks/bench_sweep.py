"""Wall time of a study of identical small runs with 1 worker and with 2 workers (local executor).

    .venv/bin/python benchmarks/bench_sweep.py            # 8 runs (different seeds), H=64, T=50, 300 updates

Each worker uses one PyTorch thread, so 2 workers should use both cores; the ratio is printed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from rnnlab.lab.store import Store
from rnnlab.lab.study import make_study
from rnnlab.lab.sweep import run_study


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args(argv)
    study = make_study(
        {
            "name": "bench",
            "claim": "-",
            "source": "-",
            "defaults": {
                "task": "adding",
                "seq_len": 50,
                "hidden_size": 64,
                "steps": args.steps,
                "eval_every": args.steps,
                "cell": "lstm",
                "stop_when_solved": False,
            },
            "grid": {"seed": list(range(args.runs))},
        }
    )
    times = {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as folder:
            store = Store(Path(folder) / "s.db")
            start = time.perf_counter()
            summary = run_study(study, store, workers=workers, progress=False)
            times[workers] = time.perf_counter() - start
            assert summary.ran == args.runs and summary.failed == 0
        print(f"{workers} worker(s): {times[workers]:.1f} s for {args.runs} runs")
    print(f"speed-up with 2 workers: {times[1] / times[2]:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
