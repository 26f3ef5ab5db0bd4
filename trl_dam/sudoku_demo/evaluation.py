r"""Held-out evaluation of a Sudoku denoiser at several completion budgets, and the accuracy of the optimum p*.

Decoding is :func:`trl_dam.evaluation.decode_completions` (d1's greedy low-confidence protocol, or exact CTMC
samples). Accuracy is d1's Sudoku accuracy, the fraction of empty cells filled correctly (micro-averaged), plus the
fraction of puzzles fully solved; completions are cut after their first end-of-sequence token and parsed with
:func:`trl_dam.tasks.sudoku.extract_sudoku_grid` (the first 16 digits), exactly as the trainer hands them to the
reward and as ``load_metric("sudoku_accuracy")`` scores them.

The optimum of DAM's objective is :math:`p^*(x) \propto p^{\mathrm{base}}(x)\, e^{r(x)/\beta}`. Its accuracy is
estimated per puzzle by self-normalised importance sampling of base samples :math:`x_1..x_N` (CTMC):
:math:`\hat E_{p^*}[f] = \sum_n w_n f(x_n) / \sum_n w_n`, :math:`w_n = e^{r(x_n)/\beta}`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from trl_dam.evaluation.decoding import decode_completions
from trl_dam.tasks.sudoku import extract_sudoku_grid, score_sudoku_grid

__all__ = [
    "OptimumEstimate",
    "SudokuScores",
    "estimate_optimum_accuracy",
    "evaluate_budgets",
    "format_results_table",
    "score_completions",
    "snis_mean",
    "total_rewards",
]


@dataclass
class SudokuScores:
    """Blank-cell accuracy (d1's Sudoku accuracy) and fraction of puzzles solved."""

    cell_accuracy: float
    puzzle_accuracy: float
    num_puzzles: int

    def as_dict(self) -> dict[str, float]:
        return {"cell_accuracy": self.cell_accuracy, "puzzle_accuracy": self.puzzle_accuracy}


def score_completions(texts: Sequence[str], puzzles: Sequence[str], solutions: Sequence[str]) -> SudokuScores:
    """Score completion texts as the ``sudoku_accuracy`` metric does (micro-averaged blank cells, solved puzzles)."""
    correct = total = solved = 0
    for text, puzzle, solution in zip(texts, puzzles, solutions, strict=True):
        grid = extract_sudoku_grid(text)
        hits, blanks = score_sudoku_grid(grid, puzzle, solution)
        correct, total, solved = correct + hits, total + blanks, solved + (grid == solution)
    n = len(texts)
    return SudokuScores(correct / total if total else 0.0, solved / n if n else 0.0, n)


def evaluate_budgets(
    model,
    tokenizer,
    rows: dict[str, Sequence] | Any,
    budgets: Sequence[int],
    *,
    decoders: Sequence[str] = ("low_confidence",),
    block_length: int | None = None,
    batch_size: int = 256,
    seed: int = 0,
    disable_adapter: bool = False,
    chat_template_kwargs: dict | None = None,
    tokens_per_step: int = 1,
    accelerator=None,
) -> dict[str, dict[int, SudokuScores]]:
    """Scores of ``model`` on ``rows`` (columns ``prompt``, ``puzzle``, ``solution``) per decoder and budget.

    ``block_length``, ``tokens_per_step`` and ``accelerator`` are passed to :func:`decode_completions`; the CTMC
    decoder is seeded with ``seed`` at every budget.

    Returns:
        ``{decoder: {budget: SudokuScores}}``.
    """
    results: dict[str, dict[int, SudokuScores]] = {}
    for decoder in decoders:
        results[decoder] = {}
        for budget in budgets:
            texts = decode_completions(
                model,
                tokenizer,
                rows["prompt"],
                budget,
                decoder=decoder,
                block_length=block_length,
                batch_size=batch_size,
                generator=torch.Generator().manual_seed(seed),
                disable_adapter=disable_adapter,
                chat_template_kwargs=chat_template_kwargs,
                tokens_per_step=tokens_per_step,
                accelerator=accelerator,
            )
            results[decoder][budget] = score_completions(texts, rows["puzzle"], rows["solution"])
    return results


# ---------------------------------------------------------------------------------------------- optimum p*


def snis_mean(values: Tensor, log_weights: Tensor) -> Tensor:
    r"""Self-normalised importance-sampling means, one per row: :math:`\sum_n w_n v_n / \sum_n w_n`.

    Args:
        values (`FloatTensor[P, N]`): a function of N samples for each of P prompts.
        log_weights (`FloatTensor[P, N]`): unnormalised log importance weights.

    Returns:
        `FloatTensor[P]`.
    """
    return (torch.softmax(log_weights.double(), dim=1) * values.double()).sum(1)


def total_rewards(
    reward_funcs: Sequence[Callable[..., list[float]]],
    reward_weights: Sequence[float] | None,
    prompts: Sequence[Any],
    texts: Sequence[str],
    columns: dict[str, Sequence],
) -> Tensor:
    """``FloatTensor[n]``: the weighted sum of TRL-signature rewards, as the trainer computes it (``None`` skipped)."""
    weights = list(reward_weights) if reward_weights is not None else [1.0] * len(reward_funcs)
    completions = [[{"role": "assistant", "content": t}] for t in texts] if isinstance(prompts[0], list) else texts
    total = torch.zeros(len(texts), dtype=torch.float64)
    for func, weight in zip(reward_funcs, weights, strict=True):
        values = func(prompts=list(prompts), completions=list(completions), completion_ids=None, **columns)
        total += weight * torch.tensor([0.0 if v is None else float(v) for v in values], dtype=torch.float64)
    return total


@dataclass
class OptimumEstimate:
    """Accuracy of :math:`p^*` (importance-sampling estimate) and of the base samples it was computed from.

    Attributes:
        cell_accuracy / puzzle_accuracy: estimated under :math:`p^*`.
        base_cell_accuracy / base_puzzle_accuracy: plain averages of the base samples (CTMC-sampled accuracy).
        ess_fraction: mean effective sample size of the weights over N (near 0: the estimate rests on few samples).
        num_samples: base samples N per puzzle.
    """

    cell_accuracy: float
    puzzle_accuracy: float
    base_cell_accuracy: float
    base_puzzle_accuracy: float
    ess_fraction: float
    num_samples: int
    per_puzzle_cell_accuracy: list[float] = field(default_factory=list, repr=False)


def estimate_optimum_accuracy(
    model,
    tokenizer,
    rows: dict[str, Sequence] | Any,
    budget: int,
    beta: float,
    reward_funcs: Sequence[Callable[..., list[float]]],
    reward_weights: Sequence[float] | None = None,
    *,
    num_samples: int = 16,
    batch_size: int = 256,
    seed: int = 0,
    disable_adapter: bool = False,
    chat_template_kwargs: dict | None = None,
    tokens_per_step: int = 1,
    accelerator=None,
) -> OptimumEstimate:
    r"""Estimate the accuracy of :math:`p^* \propto p^{\mathrm{base}} e^{r/\beta}` on held-out puzzles.

    ``model`` is the base; ``num_samples`` CTMC samples per puzzle are drawn from it, scored with the training
    reward (``reward_funcs`` / ``reward_weights``), and weighted by :math:`e^{r/\beta}` within each puzzle. The
    estimate is consistent as ``num_samples`` grows but biased for small N (it can only reweight the answers the base
    produced); ``ess_fraction`` says how many samples carry the weight.
    """
    prompts = list(rows["prompt"])
    texts = decode_completions(
        model,
        tokenizer,
        prompts,
        budget,
        decoder="ctmc",
        num_samples=num_samples,
        batch_size=batch_size,
        generator=torch.Generator().manual_seed(seed),
        disable_adapter=disable_adapter,
        chat_template_kwargs=chat_template_kwargs,
        tokens_per_step=tokens_per_step,
        accelerator=accelerator,
    )

    def repeat(values):
        return [v for v in values for _ in range(num_samples)]

    columns = {key: repeat(rows[key]) for key in ("puzzle", "solution")}
    rewards = total_rewards(reward_funcs, reward_weights, repeat(prompts), texts, columns).view(-1, num_samples)
    cells, solved, blanks = [], [], []
    for text, puzzle, solution in zip(texts, columns["puzzle"], columns["solution"]):
        grid = extract_sudoku_grid(text)
        hits, total = score_sudoku_grid(grid, puzzle, solution)
        cells.append(hits)
        blanks.append(total)
        solved.append(float(grid == solution))
    cells_t = torch.tensor(cells, dtype=torch.float64).view(-1, num_samples)
    solved_t = torch.tensor(solved, dtype=torch.float64).view(-1, num_samples)
    blanks_t = torch.tensor(blanks, dtype=torch.float64).view(-1, num_samples)[:, 0]
    log_w = rewards / beta
    weights = torch.softmax(log_w, dim=1)
    ess = 1.0 / (weights**2).sum(1)
    expected_cells = snis_mean(cells_t, log_w)
    return OptimumEstimate(
        cell_accuracy=float(expected_cells.sum() / blanks_t.sum()),
        puzzle_accuracy=float(snis_mean(solved_t, log_w).mean()),
        base_cell_accuracy=float(cells_t.mean(1).sum() / blanks_t.sum()),
        base_puzzle_accuracy=float(solved_t.mean()),
        ess_fraction=float(ess.mean() / num_samples),
        num_samples=num_samples,
        per_puzzle_cell_accuracy=(expected_cells / blanks_t).tolist(),
    )


# ---------------------------------------------------------------------------------------------- report

_DECODER_NAMES = {"low_confidence": "greedy (d1)", "ctmc": "sampled (CTMC)"}


def format_results_table(
    results: dict[str, dict[str, dict[int, SudokuScores]]],
    train_budget: int,
    optimum: OptimumEstimate | None = None,
    beta: float | None = None,
) -> str:
    """A plain-text table of ``{model: {decoder: {budget: SudokuScores}}}`` (e.g. ``base`` and ``finetuned``).

    Each cell reads ``blank-cell accuracy % / puzzles solved %``; a last line gives the p* estimate.
    """
    models = list(results)
    first = results[models[0]]
    num_puzzles = next(iter(next(iter(first.values())).values())).num_puzzles
    lines = [
        f"Held-out puzzles ({num_puzzles}, solution grids unseen in training): blank-cell accuracy % / solved %",
        f"{'decoder':<16}{'budget':<12}" + "".join(f"{name:>18}" for name in models),
    ]
    for decoder, per_budget in first.items():
        for budget in per_budget:
            label = f"{budget} ({budget / train_budget:g}x)"
            cells = "".join(
                f"{100 * results[m][decoder][budget].cell_accuracy:>10.1f} / {100 * results[m][decoder][budget].puzzle_accuracy:>5.1f}"
                for m in models
            )
            lines.append(f"{_DECODER_NAMES.get(decoder, decoder):<16}{label:<12}{cells}")
    if optimum is not None:
        lines.append(
            f"optimum p* ~ p_base exp(r/beta), beta={beta:g} (importance-weighted {optimum.num_samples} base samples "
            f"per puzzle, ESS {100 * optimum.ess_fraction:.0f}%): {100 * optimum.cell_accuracy:.1f} / "
            f"{100 * optimum.puzzle_accuracy:.1f}   (base samples: {100 * optimum.base_cell_accuracy:.1f} / "
            f"{100 * optimum.base_puzzle_accuracy:.1f})"
        )
    return "\n".join(lines)
