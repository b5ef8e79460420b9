"""rnnlab train: train one model on a task and store the run (resuming an interrupted one)."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from rnnlab.cli.common import UsageError, console, fmt, fmt_rate, open_store, positive_int, store_option


def register(sub) -> None:
    from rnnlab.lab.optimizers import OPTIMIZERS
    from rnnlab.lab.tasks import TASKS
    from rnnlab.recurrent.cells import CELLS

    parser = sub.add_parser(
        "train",
        parents=[store_option()],
        help="train one model on a task and store the run",
        description="Train one model on a task. Options override the --config file's values. Running the "
        "same command again after an interruption resumes the run from its last checkpoint; after it finished, "
        "shows the stored run (--again trains a new one). With a larger --steps than a completed run of the same "
        "config, continues that run from its end instead of training its updates again.",
    )
    parser.add_argument("--config", help="YAML file with RunConfig keys (see docs/training.md)")
    parser.add_argument("--name", help="label for tables and reports")
    parser.add_argument("--task", choices=list(TASKS))
    parser.add_argument("--seq-len", type=positive_int, help="sequence length T (text: the BPTT window)")
    parser.add_argument("--cell", choices=list(CELLS))
    parser.add_argument("--hidden", type=positive_int, help="hidden size H")
    parser.add_argument("--layers", type=positive_int, help="stacked recurrent layers")
    parser.add_argument("--init", help="init spec, e.g. orthogonal or orthogonal+chrono (rnnlab inits)")
    parser.add_argument("--optimizer", choices=list(OPTIMIZERS))
    parser.add_argument("--lr", type=float, help="learning rate")
    parser.add_argument("--batch-size", type=positive_int)
    parser.add_argument("--steps", type=positive_int, help="optimizer updates")
    parser.add_argument("--clip-norm", type=float, help="clip the global gradient norm to this value")
    parser.add_argument("--clip-value", type=float, help="clamp every gradient element to ±this value")
    parser.add_argument("--clip-param-norm", type=float, help="clip each parameter's gradient norm (Keras clipnorm)")
    parser.add_argument("--truncate", type=positive_int, help="engine-truncated BPTT window (sequence tasks)")
    parser.add_argument("--bptt", type=positive_int, nargs="+", metavar="K", help="K1 [K2]: BPTT(k1, k2) (text)")
    parser.add_argument("--eval-every", type=positive_int, help="updates between evaluations")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="any other config key (repeatable)")
    parser.add_argument("--threads", type=positive_int, help="PyTorch threads (default: PyTorch's choice)")
    parser.add_argument("--again", action="store_true", help="train a new run even if this config already ran")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def overrides(args: argparse.Namespace) -> dict:
    """CLI options → config keys (None means: not given, keep the file's or the default value)."""
    overrides = {
        "name": args.name,
        "task": args.task,
        "seq_len": args.seq_len,
        "cell": args.cell,
        "hidden_size": args.hidden,
        "num_layers": args.layers,
        "init": args.init,
        "optimizer": args.optimizer,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "truncate": args.truncate,
        "eval_every": args.eval_every,
        "seed": args.seed,
    }
    clips = [
        (m, v)
        for m, v in (
            ("global_norm", args.clip_norm),
            ("value", args.clip_value),
            ("per_param_norm", args.clip_param_norm),
        )
        if v is not None
    ]
    if len(clips) > 1:
        raise UsageError("train: give at most one of --clip-norm, --clip-value, --clip-param-norm")
    if clips:
        overrides["clip"], overrides["clip_threshold"] = clips[0]
    if args.bptt is not None:
        overrides["bptt_k1"] = args.bptt[0]
        overrides["bptt_k2"] = args.bptt[1] if len(args.bptt) > 1 else None
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"train: --set expects KEY=VALUE, got {item!r}")
        import yaml

        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


def run(args: argparse.Namespace) -> int:
    import torch

    from rnnlab.lab.checkpoints import resume_point
    from rnnlab.lab.config import load_config
    from rnnlab.lab.environment import environment
    from rnnlab.lab.store.claims import claimant
    from rnnlab.lab.sweep import shorter_run
    from rnnlab.lab.trainer import Trainer, build_task

    if args.bptt is not None and len(args.bptt) > 2:
        raise UsageError("train: --bptt takes K1 or K1 K2")
    config = load_config(args.config, overrides(args))
    if args.threads:
        torch.set_num_threads(args.threads)
    task = build_task(config)  # a task that rejects its length or options does so before a run is stored
    out = console()
    with open_store(args) as store:
        if not args.again and show_done(out, store, config):
            return 0
        claimed = {**environment(), "claimed_by": claimant()}
        label = config.label()
        run_id, state = store.claim_run(label, config.canonical(), config.hash(), claimed, None, again=args.again)
        if state == "finished":  # another process finished it since show_done looked
            return 0 if show_done(out, store, config) else 1
        if state == "busy":  # training it here too would do the work twice, in step
            owner = store.run(run_id).environment.get("claimed_by") or {}
            out.print(
                f"Run {run_id} ({label}) is being trained now by another process on this machine "
                f"(pid {owner.get('pid', '?')}); run the same command when it has ended to see it"
            )
            return 1
        if state != "new":  # interrupted (or failed): continue it instead of starting another
            where = resume_point(store.checkpoint_path(run_id), config.steps) or "from its unreadable checkpoint"
            out.print(f"Resuming run {run_id} ({label}) {where}")
        else:
            out.print(f"Run {run_id}: {label} on {config.task} (T={config.seq_len}), store {store.path}")
        start_from = None
        if not store.checkpoint_path(run_id).exists() and (shorter := shorter_run(store, None, config)) is not None:
            # The same config ran to a smaller budget: go on from its end rather than train that part again.
            start_from = store.checkpoint_path(shorter.id)
            out.print(f"Continuing run {shorter.id} from its {shorter.config['steps']} updates")
        trainer = Trainer(
            config,
            task=task,
            checkpoint_path=store.checkpoint_path(run_id),
            progress=not args.no_progress,
            start_from=start_from,
        )
        try:
            result = trainer.run()
        except KeyboardInterrupt:
            out.print(f"Interrupted: run {run_id} can resume from its last checkpoint (run the same command)")
            return 130
        store.finish_run(run_id, result.to_dict())
        print_run(out, store.run(run_id))
    return 0


def show_done(out: Console, store, config) -> bool:
    """Show the stored run of this config if it ran to the end, or if the same config with a smaller budget
    solved or diverged before it (runs are deterministic: a larger budget would end the same way, update for
    update); False when there is none to show."""
    from rnnlab.lab.sweep import ended_early

    done = store.find(config.hash(), study=None)
    if done is not None:
        out.print(f"Already in {store.path}: run {done.id} has this config (use --again for a new run)")
        print_run(out, done)
        return True
    if store.find(config.hash(), study=None, statuses=("running",)) is None and (
        same := ended_early(store, None, config)
    ):
        out.print(
            f"Already in {store.path}: run {same.id}, this config with {same.config['steps']} updates, "
            f"{same.ended}; a larger budget ends the same way (use --again to train anyway)"
        )
        print_run(out, same)
        return True
    return False


def print_run(out: Console, run, status: str | None = None) -> None:
    """A run's facts as a table; `status` in place of the stored one (`runs show`: whether a 'running' run is
    trained now or was interrupted, `run_status`)."""
    table = Table(title=f"Run {run.id}: {run.name}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    config = run.config  # a trainer's RunConfig, or what a monitor knew of a user's layer (no init, no optimiser)
    trained = "optimizer" in config  # by rnnlab's trainer: its metric is the task's, on the test set
    model = f"{config.get('cell', '?')} H={config.get('hidden_size', '?')} × {config.get('num_layers', '?')}"
    rows = [
        ("status", status or run.status),
        ("task", f"{config.get('task', '?')} (T={config.get('seq_len', '?')})"),
        ("model", model + (f", init {config['init']}" if "init" in config else "")),
        ("steps", fmt(run.steps)),
        (f"final {'test ' if trained else ''}{run.metric_name or 'metric'}", fmt(run.final_metric)),
        ("solved at step", fmt(run.solved_at)),
        ("diverged at step", fmt(run.diverged_at)),
        ("clip rate", fmt_rate(run.clip_rate)),
        ("wall time", "-" if run.wall_time is None else f"{run.wall_time:.1f} s"),
        ("optimiser", _optimiser(run.config) if trained else "-"),
        ("batch size", fmt(run.config.get("batch_size"))),
        ("clipping", _clipping(run.config) if trained else "-"),
        ("seed", fmt(run.config.get("seed"))),
        ("config hash", run.config_hash),
    ]
    if config.get("regularizer") == "omega":
        rows.insert(-2, ("regulariser", f"Pascanu's Ω, weight {fmt(config.get('omega_weight'))}"))  # before the seed
    if run.error:
        rows.append(("error", run.error))
    for row in rows:
        table.add_row(*row)
    out.print(table)


def _optimiser(config: dict) -> str:
    from rnnlab.lab.optimizers import OPTIMIZERS

    name = config.get("optimizer", "adam")
    text, spec = f"{name} lr {fmt(config.get('lr'))}", OPTIMIZERS.get(name)
    if config.get("orthogonal_lr"):  # ExpRNN's A in a group of its own
        text += f" (A: {fmt(config['orthogonal_lr'])})"
    if spec is not None and spec.takes_momentum and config.get("momentum"):
        text += f", momentum {fmt(config['momentum'])}"
    if spec is not None and spec.default_alpha is not None:
        text += f", alpha {fmt(config.get('alpha') or spec.default_alpha)}"
    return text


def _clipping(config: dict) -> str:
    mode = config.get("clip", "none")
    return "none" if mode == "none" else f"{mode} at {fmt(config.get('clip_threshold'))}"
