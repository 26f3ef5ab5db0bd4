r"""Held-out evaluation of a Sudoku denoiser at several completion budgets, and the accuracy of the optimum p*.

Two decoders (both from :mod:`trl_dam.core.sampling`):

* ``"low_confidence"``: d1's evaluation protocol, LLaDA's semi-autoregressive low-confidence remasking at
  temperature 0 with ``budget / 2`` denoiser calls (two tokens per call) and blocks of ``block_length`` tokens;
* ``"ctmc"``: one sample of the exact masked CTMC (random unmasking order, temperature 1), i.e. the model's own
  distribution, which is what DAM's objective is about.

Accuracy is d1's Sudoku accuracy, the fraction of empty cells filled correctly (micro-averaged), plus the fraction
of puzzles fully solved; completions are cut after their first end-of-sequence token and parsed with
:func:`trl_dam.tasks.sudoku.extract_sudoku_grid` (the first 16 digits), exactly as the trainer hands them to the
reward and as ``load_metric("sudoku_accuracy")`` scores them.

The optimum of DAM's objective is :math:`p^*(x) \propto p^{\mathrm{base}}(x)\, e^{r(x)/\beta}`. Its accuracy is
estimated per puzzle by self-normalised importance sampling of base samples :math:`x_1..x_N` (CTMC):
:math:`\hat E_{p^*}[f] = \sum_n w_n f(x_n) / \sum_n w_n`, :math:`w_n = e^{r(x_n)/\beta}`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from trl_dam.core import low_confidence_decode, sample_ctmc
from trl_dam.models import resolve_adapter
from trl_dam.tasks.sudoku import extract_sudoku_grid, score_sudoku_grid

__all__ = [
    "DECODERS",
    "base_for_generation",
    "policy_for_generation",
    "OptimumEstimate",
    "SudokuScores",
    "decode_completions",
    "estimate_optimum_accuracy",
    "evaluate_budgets",
    "format_results_table",
    "score_completions",
    "completion_texts",
    "eos_token_ids",
    "snis_mean",
    "total_rewards",
]

DECODERS = ("low_confidence", "ctmc")


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


# ---------------------------------------------------------------------------------------------- tokenisation


def _tokenize_prompts(tokenizer, prompts: Sequence[Any], chat_template_kwargs: dict | None = None) -> list[list[int]]:
    """Prompt ids as the trainer builds them (chat template with generation prompt for conversational prompts)."""
    if isinstance(prompts[0], list):
        out = tokenizer.apply_chat_template(
            list(prompts), add_generation_prompt=True, tokenize=True, return_dict=True, **(chat_template_kwargs or {})
        )
        return [list(ids) for ids in out["input_ids"]]
    return [list(ids) for ids in tokenizer(list(prompts))["input_ids"]]


def _canvas(prompt_ids: Sequence[Sequence[int]], budget: int, pad_id: int, mask_id: int) -> Tensor:
    """``LongTensor[n, P + budget]``: prompts left-padded to a common width, then ``budget`` mask tokens."""
    width = max(len(ids) for ids in prompt_ids)
    x = torch.full((len(prompt_ids), width + budget), pad_id, dtype=torch.long)
    x[:, width:] = mask_id
    for row, ids in enumerate(prompt_ids):
        x[row, width - len(ids) : width] = torch.tensor(ids, dtype=torch.long)
    return x


def eos_token_ids(tokenizer, model=None) -> list[int]:
    """End-of-sequence ids: the tokenizer's and the model's generation config's (as the trainer cuts completions)."""
    model_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    model_eos = model_eos if isinstance(model_eos, list) else [model_eos]
    return sorted({tokenizer.eos_token_id, *model_eos} - {None})


def completion_texts(tokenizer, completion_ids: Tensor, eos_ids: Sequence[int]) -> list[str]:
    """Cut each completion after its first end-of-sequence token and decode it without special tokens."""
    is_eos = torch.isin(completion_ids, torch.tensor(list(eos_ids), device=completion_ids.device))
    lengths = torch.where(is_eos.any(1), is_eos.int().argmax(1) + 1, completion_ids.shape[1])
    rows = [row[:n].tolist() for row, n in zip(completion_ids, lengths.tolist())]
    return tokenizer.batch_decode(rows, skip_special_tokens=True)


# ---------------------------------------------------------------------------------------------- decoding


def _denoiser(model, adapter, pad_id: int, disable_adapter: bool) -> Callable[[Tensor], Tensor]:
    """``x -> logits`` with the left padding of ``x`` masked out (the trainer's convention)."""

    def logits_fn(x: Tensor) -> Tensor:
        real = (x != pad_id).cumsum(1) > 0
        attention_mask = None if bool(real.all()) else real.long()
        context = model.disable_adapter() if disable_adapter else nullcontext()
        with context:
            return adapter.logits(model, x, attention_mask)

    return logits_fn


@torch.no_grad()
def decode_completions(
    model,
    tokenizer,
    prompts: Sequence[Any],
    budget: int,
    *,
    decoder: str = "low_confidence",
    block_length: int | None = None,
    steps: int | None = None,
    num_samples: int = 1,
    batch_size: int = 256,
    generator: torch.Generator | None = None,
    disable_adapter: bool = False,
    chat_template_kwargs: dict | None = None,
    tokens_per_step: int = 1,
    accelerator=None,
) -> list[str]:
    """Complete every prompt with a ``budget``-token canvas and return the completion texts.

    Args:
        model: the denoiser (any model :func:`~trl_dam.models.resolve_adapter` supports); put in eval mode for the
            call and restored afterwards.
        tokenizer: its tokenizer (``pad``, ``eos`` and ``mask`` ids).
        prompts: plain-text or conversational prompts.
        budget: completion length in tokens.
        decoder: ``"low_confidence"`` (d1's greedy protocol) or ``"ctmc"`` (one exact model sample per prompt).
        block_length: block size of ``"low_confidence"`` (default: the whole canvas); clipped to ``budget``.
        steps: denoiser calls of ``"low_confidence"`` (default ``budget // 2``, d1's two tokens per call).
        num_samples: completions per prompt (``"ctmc"``), returned prompt-major (``n * num_samples`` texts).
        batch_size: sequences per decoder call.
        generator: CPU generator of the CTMC sampler.
        disable_adapter: decode with the PEFT adapters disabled (the base model of a LoRA run).
        chat_template_kwargs: for conversational prompts.
        tokens_per_step: tokens the ``"ctmc"`` sampler reveals per call (1: the exact jump chain).
        accelerator: with several processes, each decodes a contiguous shard of the prompts and the texts are
            gathered (in order) on every process.
    """
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}.")
    adapter = resolve_adapter(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    prompt_ids = _tokenize_prompts(tokenizer, prompts, chat_template_kwargs)
    prompt_ids = [ids for ids in prompt_ids for _ in range(num_samples)]
    sharded = accelerator is not None and accelerator.num_processes > 1
    if sharded:
        with accelerator.split_between_processes(prompt_ids) as shard:
            prompt_ids = list(shard)
    device = next(model.parameters()).device
    logits_fn = _denoiser(model, adapter, pad_id, disable_adapter)
    block = min(block_length or budget, budget)
    calls = steps or max(1, budget // 2)
    eos_ids = eos_token_ids(tokenizer, model)
    was_training = model.training
    model.eval()
    texts: list[str] = []
    try:
        for i in range(0, len(prompt_ids), batch_size):
            x = _canvas(prompt_ids[i : i + batch_size], budget, pad_id, adapter.mask_token_id).to(device)
            if decoder == "low_confidence":
                final = low_confidence_decode(
                    logits_fn, x, adapter.mask_token_id, steps=calls, block_length=block, temperature=0.0
                )
            else:
                final = sample_ctmc(
                    logits_fn, x, adapter.mask_token_id, tokens_per_step=tokens_per_step, generator=generator
                ).final
            texts += completion_texts(tokenizer, final[:, -budget:], eos_ids)
    finally:
        model.train(was_training)
    if sharded:
        from accelerate.utils import gather_object

        texts = gather_object(texts)
    return texts


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


# ---------------------------------------------------------------------------------------------- trainer models


@contextmanager
def policy_for_generation(trainer) -> Iterator[tuple[Any, bool]]:
    """``(model, disable_adapter)`` for decoding with a trainer's current policy (DeepSpeed/DDP unwrapped, ZeRO-3
    weights gathered)."""
    from trl.models import unwrap_model_for_generation

    with unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator) as model:
        yield model, False


@contextmanager
def base_for_generation(trainer) -> Iterator[tuple[Any, bool]]:
    """``(model, disable_adapter)`` for decoding with a trainer's base (reference) model: the policy network with its
    adapters disabled under PEFT, else the trainer's frozen reference copy."""
    from accelerate.utils import is_peft_model
    from trl.models import unwrap_model_for_generation

    if trainer.ref_model is None:
        with unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator) as model:
            if not is_peft_model(model):
                raise ValueError("The trainer has neither a reference model nor PEFT adapters to disable.")
            yield model, True
        return
    with unwrap_model_for_generation(trainer.ref_model, trainer.accelerator) as model:
        yield model, False


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
