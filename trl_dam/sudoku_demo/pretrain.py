r"""Pre-training of the tiny base denoiser with the masked-diffusion objective on a partly corrupted corpus.

Each example is a compact prompt followed by a completion canvas of ``completion_length * m`` tokens (``m`` drawn
from ``budget_multiples``, ``completion_length`` 16 by default): the 16 digits of a teacher answer
(:mod:`.teachers`), then end-of-sequence tokens. A fraction :math:`t \sim U(0, 1)` of the canvas is masked and the
model is trained with cross-entropy on the masked tokens (LLaDA's supervised fine-tuning loss, normalised by the
number of masked *digits* so that the easy end-of-sequence tail of long canvases does not dilute it). It thereby
learns every conditional that the masked CTMC and the low-confidence decoder query, at every completion budget it is
evaluated at.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from trl_dam.models import resolve_adapter
from trl_dam.tasks.sudoku import SUDOKU_CELLS, format_sudoku_prompt

from .teachers import CORRUPTIONS, row_heuristic_fill

__all__ = ["PretrainConfig", "PretrainResult", "encode_digits", "pretrain_base"]


@dataclass
class PretrainConfig:
    """Settings of :func:`pretrain_base`.

    Attributes:
        steps: optimizer steps.
        batch_size: examples per step.
        learning_rate: peak AdamW learning rate (linear warm-up, then cosine decay to 10%).
        warmup_steps: warm-up steps.
        weight_decay: AdamW weight decay.
        corruption: ``"row_heuristic"``, ``"random"`` or ``"none"`` (see :mod:`.teachers`).
        corrupt_prob: probability that an example's answer is corrupted.
        budget_multiples: completion canvases of ``completion_length * m`` tokens, ``m`` drawn uniformly per step.
        completion_length: the 1x completion budget (at least 16: the digits, then end-of-sequence tokens).
        seed: seed of the batches and masks.
    """

    steps: int = 2000
    batch_size: int = 64
    learning_rate: float = 2e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    corruption: str = "row_heuristic"
    corrupt_prob: float = 0.6
    budget_multiples: Sequence[int] = (1, 2, 4)
    completion_length: int = SUDOKU_CELLS
    seed: int = 0

    def __post_init__(self):
        if self.corruption not in CORRUPTIONS:
            raise ValueError(f"corruption must be one of {CORRUPTIONS}, got {self.corruption!r}.")
        if not 0.0 <= self.corrupt_prob <= 1.0:
            raise ValueError(f"corrupt_prob must be in [0, 1], got {self.corrupt_prob}.")
        if self.completion_length < SUDOKU_CELLS:
            raise ValueError(f"completion_length must be >= {SUDOKU_CELLS}, got {self.completion_length}.")


@dataclass
class PretrainResult:
    """Losses (one per step), wall time and CPU time of a pre-training run."""

    losses: list[float]
    seconds: float
    cpu_seconds: float


def encode_digits(tokenizer, grids: Sequence[str]) -> torch.Tensor:
    """``LongTensor[n, 16]``: the token ids of the digits of each 16-character grid."""
    vocab = tokenizer.get_vocab()
    return torch.tensor([[vocab[char] for char in grid] for grid in grids], dtype=torch.long)


def _encode_prompts(tokenizer, puzzles: Sequence[str]) -> torch.Tensor:
    ids = tokenizer([format_sudoku_prompt(p, "compact") for p in puzzles])["input_ids"]
    if len({len(row) for row in ids}) != 1:
        raise ValueError("compact Sudoku prompts should all tokenize to the same length")
    return torch.tensor(ids, dtype=torch.long)


def pretrain_base(
    model: torch.nn.Module,
    tokenizer,
    pairs: Sequence[tuple[str, str]],
    config: PretrainConfig,
    *,
    progress: bool = True,
) -> PretrainResult:
    """Pre-train ``model`` in place on ``(puzzle, solution)`` pairs with teacher answers from ``config``.

    Args:
        model: a masked LM (any kind :func:`~trl_dam.models.resolve_adapter` supports), left in eval mode.
        tokenizer: the Sudoku tokenizer (its mask and end-of-sequence ids are used).
        pairs: training puzzles and their solutions.
        config: optimisation and corpus settings.
        progress: show a tqdm progress bar.

    Returns:
        The per-step losses and the wall time.
    """
    generator = torch.Generator().manual_seed(config.seed)
    adapter = resolve_adapter(model, tokenizer)
    mask_id, eos_id = adapter.mask_token_id, tokenizer.eos_token_id
    puzzles = [p for p, _ in pairs]
    prompts = _encode_prompts(tokenizer, puzzles)
    solutions = encode_digits(tokenizer, [s for _, s in pairs])
    blank = torch.tensor([[char == "0" for char in p] for p in puzzles])
    heuristic = encode_digits(tokenizer, [row_heuristic_fill(p) for p in puzzles])
    digit_ids = encode_digits(tokenizer, ["1234"])[0]

    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)

    def lr_factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress_ = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress_))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    multiples = list(config.budget_multiples)
    losses: list[float] = []
    model.train()
    start, cpu_start = time.perf_counter(), time.process_time()
    bar = tqdm(range(config.steps), desc="pre-training base", disable=not progress)
    for _ in bar:
        batch = torch.randint(len(pairs), (config.batch_size,), generator=generator)
        answer = solutions[batch].clone()
        corrupt = torch.rand(config.batch_size, generator=generator) < config.corrupt_prob
        if config.corruption == "row_heuristic":
            answer[corrupt] = heuristic[batch][corrupt]
        elif config.corruption == "random":
            noise = digit_ids[torch.randint(4, answer.shape, generator=generator)]
            fill = corrupt.unsqueeze(1) & blank[batch]
            answer[fill] = noise[fill]
        multiple = multiples[int(torch.randint(len(multiples), (1,), generator=generator))]
        tail = torch.full((config.batch_size, config.completion_length * multiple - SUDOKU_CELLS), eos_id)
        completion = torch.cat([answer, tail], dim=1)
        # t ~ U(0, 1) per example; each canvas token is masked with probability t (at least one per example).
        t = torch.rand(config.batch_size, 1, generator=generator)
        masked = torch.rand(completion.shape, generator=generator) < t
        forced = torch.randint(completion.shape[1], (config.batch_size,), generator=generator)
        masked[torch.arange(config.batch_size), forced] = True
        x = torch.cat([prompts[batch], completion.masked_fill(masked, mask_id)], dim=1)
        logits = adapter.logits(model, x)[:, prompts.shape[1] :]
        # Summed over every masked token but normalised by the masked *digits*: the end-of-sequence tail of a longer
        # canvas is quickly learnt and must not dilute the digits' gradient.
        token_loss = F.cross_entropy(logits[masked].float(), completion[masked], reduction="sum")
        loss = token_loss / masked[:, :SUDOKU_CELLS].sum().clamp(min=1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
        if len(losses) % 50 == 0:
            bar.set_postfix(loss=f"{sum(losses[-50:]) / 50:.3f}")
    model.eval()
    return PretrainResult(losses, time.perf_counter() - start, time.process_time() - cpu_start)
