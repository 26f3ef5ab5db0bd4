"""The demo's training figure: reward of fresh samples and held-out accuracy over DAM steps."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["plot_training"]


def plot_training(
    log_history: Sequence[dict],
    accuracy_history: Sequence[dict],
    path: str | Path,
    *,
    title: str = "DAM fine-tuning on 4x4 Sudoku",
    optimum_cell_accuracy: float | None = None,
) -> Path:
    """Write a two-panel PNG: training reward (left) and held-out accuracy (right) against the optimizer step.

    Args:
        log_history: ``trainer.state.log_history``; entries with ``"reward"`` (the generation rounds' mean total
            reward) and ``"rewards/sudoku_reward/mean"`` are plotted.
        accuracy_history: ``[{"step", "cell_accuracy", "puzzle_accuracy"}]`` (see
            :class:`~trl_dam.sudoku_demo.SudokuAccuracyCallback`).
        path: output file.
        title: figure title.
        optimum_cell_accuracy: if given, a dashed line at the estimated blank-cell accuracy of p*.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key, label in (("reward", "total reward"), ("rewards/sudoku_reward/mean", "blank-cell reward")):
        points = [(entry["step"], entry[key]) for entry in log_history if key in entry and "step" in entry]
        if points:
            left.plot(*zip(*points), marker=".", label=label)
    left.set_xlabel("DAM step")
    left.set_ylabel("mean reward of fresh samples")
    left.set_title("training reward")
    left.grid(alpha=0.3)
    left.legend()
    if accuracy_history:
        steps = [entry["step"] for entry in accuracy_history]
        right.plot(steps, [100 * e["cell_accuracy"] for e in accuracy_history], marker="o", label="blank cells")
        right.plot(steps, [100 * e["puzzle_accuracy"] for e in accuracy_history], marker="s", label="puzzles solved")
    if optimum_cell_accuracy is not None:
        right.axhline(100 * optimum_cell_accuracy, color="gray", linestyle="--", label="p* blank cells (est.)")
    right.set_xlabel("DAM step")
    right.set_ylabel("held-out accuracy (%), greedy decoding")
    right.set_ylim(0, 100)
    right.set_title("held-out puzzles")
    right.grid(alpha=0.3)
    right.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
