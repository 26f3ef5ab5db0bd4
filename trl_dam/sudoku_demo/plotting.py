"""The demo's training figure: reward of fresh samples and held-out accuracy over DAM steps.

The accuracy panel mixes two kinds of numbers, and says so: the model's accuracy under *greedy* decoding (its mode,
at every evaluation) and the accuracy of *samples* of the target p* (one estimate, a horizontal line). They are not
the same quantity, and greedy accuracy can and does exceed the sampled accuracy of p*: p* keeps probability on wrong
answers, so its samples are sometimes wrong, while greedy decoding of a model close to p* takes its most likely
answer, which is right more often.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["GREEDY_VS_SAMPLED_NOTE", "plot_training", "training_figure"]

#: Printed under the accuracy panel when the p* estimate is drawn.
GREEDY_VS_SAMPLED_NOTE = (
    "Greedy accuracy (the model's most likely answer) can exceed the\n"
    "accuracy of p* samples: p* still puts some mass on wrong answers."
)


def plot_training(
    log_history: Sequence[dict],
    accuracy_history: Sequence[dict],
    path: str | Path,
    *,
    title: str = "DAM fine-tuning on 4x4 Sudoku",
    optimum_cell_accuracy: float | None = None,
) -> Path:
    """Write a two-panel PNG: training reward (left) and held-out accuracy (right) against the optimizer step
    (:func:`training_figure`).

        Args:
            log_history: ``trainer.state.log_history``; entries with ``"reward"`` (the generation rounds' mean total
                reward) and ``"rewards/sudoku_reward/mean"`` are plotted.
            accuracy_history: ``[{"step", "cell_accuracy", "puzzle_accuracy"}]`` (see
                :class:`~trl_dam.sudoku_demo.SudokuAccuracyCallback`).
            path: output file.
            title: figure title.
            optimum_cell_accuracy: if given, a dashed line at the estimated blank-cell accuracy of *samples* of p*.

        Returns:
            The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = training_figure(log_history, accuracy_history, title=title, optimum_cell_accuracy=optimum_cell_accuracy)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def training_figure(
    log_history: Sequence[dict],
    accuracy_history: Sequence[dict],
    *,
    title: str = "DAM fine-tuning on 4x4 Sudoku",
    optimum_cell_accuracy: float | None = None,
):
    """The matplotlib figure :func:`plot_training` writes (same arguments, without the path). The accuracy legend
    names the decoding of each line: greedy decoding of the model, or samples of p* (see the module docstring)."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
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
        cells = [100 * e["cell_accuracy"] for e in accuracy_history]
        right.plot(steps, cells, marker="o", label="model, greedy decoding: blank cells")
        puzzles = [100 * e["puzzle_accuracy"] for e in accuracy_history]
        right.plot(steps, puzzles, marker="s", label="model, greedy decoding: puzzles solved")
    if optimum_cell_accuracy is not None:
        right.axhline(
            100 * optimum_cell_accuracy, color="gray", linestyle="--", label="p*, sampled (estimate): blank cells"
        )
        right.text(0.0, -0.3, GREEDY_VS_SAMPLED_NOTE, transform=right.transAxes, fontsize=7, va="top")
    right.set_xlabel("DAM step")
    right.set_ylabel("held-out accuracy (%)")
    right.set_ylim(0, 100)
    right.set_title("held-out puzzles")
    right.grid(alpha=0.3)
    right.legend(fontsize=7, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
