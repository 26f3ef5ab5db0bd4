"""Exact-KL benchmark with long completions: L = 4, 8, 12 tokens, every law enumerated.

Base: a small MLP denoiser pre-trained as a masked LM on a random Markov chain, then frozen; p_base is the exact law
of its random-order unmasking (dynamic programming over all (V+1)^L partial states). Reward: the fraction of adjacent
pairs (x_i, x_{i+1} = x_i + 1 mod V), times a scale. Target p* ∝ p_base exp(r / beta), KL(p* || p_theta) computed
exactly for the trained network at every evaluation point (see trl_dam.synthetic.sequences).

Methods: DAM with the paper's first-jump target, all jumps, all positions (trl_dam.core.all_positions), and D1
(diffu-GRPO). Each is reported against wall time (training only, evaluation excluded), denoiser forwards (sequence
rows through the policy or the base, sampling and training), and reward calls. --trade adds the K x states trade at a
fixed number of rollouts per step (L = 8, all-positions and first-jump targets). --lr-schedule cosine anneals the
learning rate to --lr-final over each run, the same for every method; several --iterations values give one run each.

    python benchmarks/long_sequences.py                  # full run (about 20 CPU minutes on 2 cores)
    python benchmarks/long_sequences.py --quick          # smoke run: L = 4 and 8, under a minute
    python benchmarks/long_sequences.py --lengths 8 --iterations 2000 --evaluations 40 \
        --lr-schedule cosine --learning-rate 2e-3       # L = 8 with a decaying learning rate (docs/benchmarks.md)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
from dataclasses import replace

import torch

from trl_dam.synthetic.sequence_runner import LR_SCHEDULES, SEQUENCE_METHODS, SequenceConfig, run_sequence

VOCAB = {4: 3, 8: 3, 12: 2}  # V^L completions and (V+1)^L partial states: 81/625, 6561/65536, 4096/531441
TRADE = ((4, 32), (16, 8))  # (K, states) at the default's 128 rollouts per step


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", nargs="+", type=int, default=None, choices=sorted(VOCAB))
    parser.add_argument("--methods", nargs="+", default=list(SEQUENCE_METHODS), choices=SEQUENCE_METHODS)
    parser.add_argument(
        "--iterations", nargs="+", type=int, default=None, help="steps per run; several values: one run per value"
    )
    parser.add_argument("--evaluations", type=int, default=6, help="evaluation points per run (plus the start)")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="the (starting) Adam learning rate")
    parser.add_argument(
        "--lr-schedule", default="constant", choices=LR_SCHEDULES, help="the same for every method, D1 included"
    )
    parser.add_argument("--lr-final", type=float, default=0.0, help="where the cosine schedule ends")
    parser.add_argument("--trade", action="store_true", help="add the K x states trade runs at L = 8")
    parser.add_argument("--workers", type=int, default=2, help="runs in parallel, one CPU thread each")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke run (under a minute)")
    parser.add_argument("--json", default="outputs/long_sequences.json")
    parser.add_argument("--figure", default="outputs/long_sequences.png")
    return parser.parse_args(argv)


def build_configs(args) -> list[SequenceConfig]:
    lengths = args.lengths or ([4, 8] if args.quick else sorted(VOCAB))
    common = dict(
        learning_rate=args.learning_rate,
        lr_schedule=args.lr_schedule,
        lr_final=args.lr_final,
        pretrain_steps=60 if args.quick else 400,
        seed=args.seed,
    )
    horizons = [
        dict(iterations=iterations, eval_every=max(1, iterations // args.evaluations))
        for iterations in args.iterations or [40 if args.quick else 600]
    ]
    configs = [
        SequenceConfig(length=length, vocab=VOCAB[length], method=method, **horizon, **common)
        for length in lengths
        for method in args.methods
        for horizon in horizons
    ]
    if args.trade:
        for method in ("dam_first_jump", "dam_all_positions"):
            for k, states in TRADE:
                configs.append(
                    replace(
                        SequenceConfig(length=8, vocab=VOCAB[8], method=method, **horizons[0], **common),
                        num_generations=k,
                        num_states=states,
                    )
                )
    return configs


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    configs = build_configs(args)
    if args.workers > 1:
        with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
            results = pool.map(_run_one, configs)
    else:
        results = [_run_one(config) for config in configs]
    records = [result.as_dict() for result in results]
    print_table(records)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as handle:
            json.dump({"quick": args.quick, "runs": records}, handle, indent=2)
    if args.figure:
        save_figure(records, args.figure)
    return records


def _run_one(config: SequenceConfig):
    torch.set_num_threads(1)
    result = run_sequence(config)
    label = f"L={config.length} {config.method} K={config.num_generations} S={config.num_states}"
    print(f"  done {label:40s} {result.wall_time[-1]:7.1f}s", file=sys.stderr, flush=True)
    return result


def run_label(record: dict, horizons: bool = False) -> str:
    """The method, its K x states when not the default's, and its number of steps when runs differ in it."""
    default = SequenceConfig()
    label = record["method"]
    if (record["num_generations"], record["num_states"]) != (default.num_generations, default.num_states):
        label += f" K{record['num_generations']}xS{record['num_states']}"
    if horizons:
        label += f" {record['iterations'][-1]} steps"
    return label


def time_to(record: dict, threshold: float, axis: str) -> float | None:
    """The first recorded ``axis`` value at which the exact KL is at or below ``threshold`` (None: never)."""
    return next((x for x, kl in zip(record[axis], record["kl"]) if kl <= threshold), None)


def several_horizons(records: list[dict]) -> bool:
    return len({record["iterations"][-1] for record in records}) > 1


def print_table(records: list[dict]) -> None:
    horizons = several_horizons(records)
    header = (
        f"{'L':>2s} {'V':>2s} {'method':28s} {'iter':>5s} {'KL(p*||p)':>10s} {'wall (s)':>9s} {'forwards':>10s} "
        f"{'calls':>7s} {'rewards':>8s}"
    )
    print(header)
    print("-" * len(header))
    for record in records:
        for index, iteration in enumerate(record["iterations"]):
            print(
                f"{record['length']:2d} {record['vocab']:2d} {run_label(record, horizons):28s} {iteration:5d} "
                f"{record['kl'][index]:10.2e} {record['wall_time'][index]:9.1f} {record['forwards'][index]:10d} "
                f"{record['denoiser_calls'][index]:7d} {record['reward_calls'][index]:8d}"
            )
    print()
    thresholds = (1e-2, 1e-3)
    axes = (("wall_time", "wall (s)", 9), ("forwards", "forwards", 10), ("reward_calls", "rewards", 8))
    print(f"{'':2s} {'':28s} {'':9s} " + " | ".join(f"{f'first KL<={t:.0e} at':^29s}" for t in thresholds))
    print(
        f"{'L':>2s} {'method':28s} {'final KL':>9s} "
        + " | ".join(" ".join(f"{name:>{width}s}" for _, name, width in axes) for _ in thresholds)
    )
    for record in records:
        shown = []
        for threshold in thresholds:
            cells = []
            for axis, _, width in axes:
                hit = time_to(record, threshold, axis)
                cells.append(
                    f"{'never':>{width}s}" if hit is None else f"{hit:{width}{'.1f' if axis == 'wall_time' else 'd'}}"
                )
            shown.append(" ".join(cells))
        print(f"{record['length']:2d} {run_label(record, horizons):28s} {record['kl'][-1]:9.2e} " + " | ".join(shown))


def save_figure(records: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lengths = sorted({record["length"] for record in records})
    horizons = several_horizons(records)
    axes_names = (
        ("wall_time", "wall time (s)"),
        ("forwards", "denoiser forwards (rows)"),
        ("reward_calls", "reward calls"),
    )
    fig, axes = plt.subplots(len(lengths), 3, figsize=(12, 3.2 * len(lengths)), squeeze=False)
    for row, length in enumerate(lengths):
        for col, (key, name) in enumerate(axes_names):
            ax = axes[row, col]
            for record in (r for r in records if r["length"] == length):
                ax.plot(record[key], record["kl"], marker="o", markersize=3, label=run_label(record, horizons))
            ax.set_yscale("log")
            ax.set_xlabel(name)
            ax.set_title(f"L = {length}, V = {VOCAB[length]}: KL(p*||p_theta)", fontsize=9)
            if col == 0:
                ax.legend(fontsize=6)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
