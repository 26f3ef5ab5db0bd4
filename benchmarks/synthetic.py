"""The paper's exact-KL synthetic benchmark (Checkerboard and Pinwheel on a 91x91 grid).

Runs DAM (importance-weighted adjoint), DAM with the analytic adjoint, DAM with l2 matching, diffu-GRPO (D1) and
SVDD decoding on both tasks, prints KL(p* || p_u) after jump 1 and jump 2 at each evaluation point (computed exactly
by enumeration), writes the same figures as JSON (with each run's final density) and saves the KL curves as a PNG
(``--figure``) and the densities as heatmaps next to it (``*_densities.png``).

    python benchmarks/synthetic.py                 # full default run
    python benchmarks/synthetic.py --quick         # reduced smoke run (< 1 minute)
    python benchmarks/synthetic.py --model neural  # a small MLP denoiser instead of the table
    python benchmarks/synthetic.py --replot docs/assets/synthetic.json --figure docs/assets/synthetic.png
                                                   # redraw the figures from a JSON, without training
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
from dataclasses import replace

import torch

from trl_dam.synthetic import METHODS, TASKS, SyntheticConfig, exact_densities, run_synthetic

DEFAULT_ITERATIONS = 8000
QUICK_ITERATIONS = 200


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--model", default="tabular", choices=("tabular", "neural"))
    parser.add_argument("--iterations", type=int, default=None, help="override every method's iteration count")
    parser.add_argument("--evaluations", type=int, default=6, help="evaluation points per run")
    parser.add_argument("--num-states", type=int, default=None, help="training states per iteration")
    parser.add_argument("--workers", type=int, default=2, help="runs in parallel, one CPU thread each")
    parser.add_argument("--size", type=int, default=91, help="grid side M")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="reduced smoke run (under a minute)")
    parser.add_argument("--json", default="outputs/synthetic.json", help="write the table as JSON to this path")
    parser.add_argument(
        "--figure", default="outputs/synthetic.png", help="PNG of the KL curves; heatmaps go to *_densities.png"
    )
    parser.add_argument("--replot", default=None, help="redraw --figure from this JSON instead of running")
    return parser.parse_args(argv)


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    if args.replot:
        with open(args.replot) as handle:
            report = json.load(handle)
        save_figures(report["runs"], report["size"], args.figure)
        return report["runs"]
    size = 31 if args.quick and args.size == 91 else args.size
    total = args.iterations or (QUICK_ITERATIONS if args.quick else DEFAULT_ITERATIONS)
    configs = []
    for task in args.tasks:
        for method in args.methods:
            config = SyntheticConfig(
                task=task,
                method=method,
                model=args.model,
                size=size,
                iterations=total,
                eval_every=max(1, total // args.evaluations),
                seed=args.seed,
            )
            configs.append(replace(config, num_states=args.num_states) if args.num_states else config)
    if args.workers > 1:
        # One thread per run: the tabular updates are small, so two single-thread runs beat one two-thread run.
        with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
            results = pool.map(_run_one, configs)
    else:
        results = [_run_one(config) for config in configs]
    print_table(results)
    # 4 significant digits: the heatmaps need no more, and the JSON stays small enough to keep in docs/assets
    records = [r.as_dict() for r in results]
    for record, result in zip(records, results):
        if result.final_log_density is not None:
            density = result.final_log_density.exp().tolist()
            # 4 significant digits: enough for a heatmap, and the JSON stays small enough for docs/assets
            record["final_density"] = [[float(f"{p:.4g}") for p in row] for row in density]
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as handle:
            json.dump({"model": args.model, "size": size, "seed": args.seed, "runs": records}, handle, indent=2)
    if args.figure:
        save_figures(records, size, args.figure)
    return records


def _run_one(config: SyntheticConfig):
    torch.set_num_threads(1)
    result = run_synthetic(config)
    print(f"  done {config.task:12s} {config.method:13s} {result.wall_time:7.1f}s", file=sys.stderr, flush=True)
    return result


def print_table(results) -> None:
    header = f"{'method':14s} {'task':13s} {'iteration':>9s} {'KL jump 1':>10s} {'KL jump 2':>10s} {'wall (s)':>9s}"
    print(header)
    print("-" * len(header))
    for result in results:
        for index, iteration in enumerate(result.iterations):
            last = index == len(result.iterations) - 1
            wall = f"{result.wall_time:9.1f}" if last else ""
            print(
                f"{result.method:14s} {result.task:13s} {iteration:9d} "
                f"{result.kl_first_jump[index]:10.2e} {result.kl_final_jump[index]:10.2e} {wall}"
            )


def densities_path(path: str) -> str:
    """Where the heatmaps go, next to the KL figure: ``synthetic.png`` -> ``synthetic_densities.png``."""
    root, extension = os.path.splitext(path)
    return f"{root}_densities{extension or '.png'}"


def save_figures(records: list[dict], size: int, path: str) -> None:
    """The KL curves to ``path`` and, when every run has its ``final_density``, the heatmaps to
    :func:`densities_path` (a JSON written before the densities were stored redraws the curves only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure = kl_figure(records)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    if all("final_density" in record for record in records):
        figure = density_figure(records, size)
        figure.savefig(densities_path(path), dpi=110, bbox_inches="tight")
        plt.close(figure)


def kl_figure(records: list[dict]):
    """One panel per task: KL(p* || p_u) after jump 2 (solid) and jump 1 (dashed) against the iteration, one colour
    per method, and one legend to the right of the panels, outside them, so that it covers no curve."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    tasks = sorted({r["task"] for r in records}, key=list(TASKS).index)
    methods = [m for m in METHODS if any(r["method"] == m for r in records)]
    colours = {method: f"C{index}" for index, method in enumerate(methods)}
    figure, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for record in (r for r in records if r["task"] == task):
            colour = colours[record["method"]]
            ax.plot(record["iterations"], record["kl_final_jump"], color=colour)
            ax.plot(record["iterations"], record["kl_first_jump"], color=colour, linestyle="--")
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_title(f"{task}: KL(p* || p_u)", fontsize=9)
    handles = [Line2D([], [], color=colours[m], label=m) for m in methods]
    handles += [
        Line2D([], [], color="black", label="after jump 2"),
        Line2D([], [], color="black", linestyle="--", label="after jump 1"),
    ]
    figure.tight_layout()
    figure.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    return figure


def density_figure(records: list[dict], size: int):
    """One row per task: the base density, the target p* and the final density of each method."""
    import matplotlib.pyplot as plt

    tasks = sorted({r["task"] for r in records}, key=list(TASKS).index)
    methods = [m for m in METHODS if any(r["method"] == m for r in records)]
    columns = 2 + len(methods)
    figure, axes = plt.subplots(len(tasks), columns, figsize=(2.6 * columns, 2.6 * len(tasks)), squeeze=False)
    for row, task in enumerate(tasks):
        log_base, log_target = exact_densities(task, size)
        panels = [("p_base", log_base.exp().numpy()), ("p*", log_target.exp().numpy())]
        panels += [
            (r["method"], r["final_density"])
            for m in methods
            for r in records
            if r["task"] == task and r["method"] == m
        ]
        for col, (title, density) in enumerate(panels):
            axes[row, col].imshow(density, cmap="viridis")
            axes[row, col].set_title(f"{task}: {title}", fontsize=8)
            axes[row, col].axis("off")
    figure.tight_layout()
    return figure


if __name__ == "__main__":
    main()
