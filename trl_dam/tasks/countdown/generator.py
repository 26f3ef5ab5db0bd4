"""Seeded, offline generator of solvable Countdown problems, with a hash-based train/test split.

For each problem, ``num_numbers`` numbers are drawn uniformly from ``[min_number, max_number]``; the brute-force
solver lists every integer target in ``[min_target, max_target]`` reachable with all of them, and one is drawn
uniformly (the numbers are redrawn if none is reachable). Every problem is therefore solvable, and a reference
expression is stored with it.

Train and test never share a problem: a problem (its sorted numbers and its target) is hashed, and the hash
alone decides whether it belongs to the test split (a ``test_fraction`` share of all problems) or the train split.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

import datasets

from trl_dam.tasks.countdown.prompts import build_countdown_prompt
from trl_dam.tasks.countdown.solver import countdown_reachable_values

__all__ = ["countdown_problem_split", "generate_countdown_dataset", "generate_countdown_problems"]

_MAX_CONSECUTIVE_FAILURES = 10_000


def countdown_problem_split(numbers: Sequence[int], target: int, test_fraction: float = 0.1) -> str:
    """Return ``"test"`` or ``"train"``: the split a problem belongs to.

    The decision is a SHA-256 hash of the sorted numbers and the target, so it does not depend on the order of
    the numbers, on the generator seed, or on the Python process.

    Args:
        numbers: The problem's numbers.
        target: The problem's target.
        test_fraction: Share of all problems that belong to the test split, in ``[0, 1]``.
    """
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}.")
    key = ",".join(map(str, sorted(int(n) for n in numbers))) + f"->{int(target)}"
    bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64
    return "test" if bucket < test_fraction else "train"


def generate_countdown_problems(
    num_problems: int,
    seed: int = 0,
    num_numbers: int = 3,
    min_number: int = 1,
    max_number: int = 100,
    min_target: int = 1,
    max_target: int = 100,
    split: str = "train",
    test_fraction: float = 0.1,
) -> list[dict]:
    """Draw distinct solvable problems of one split.

    Args:
        num_problems: Number of problems.
        seed: Seed of the draw.
        num_numbers: Numbers per problem (d1 uses 3; the solver is brute force, keep it at most 5).
        min_number: Smallest number.
        max_number: Largest number.
        min_target: Smallest target.
        max_target: Largest target.
        split: ``"train"`` or ``"test"``; see :func:`countdown_problem_split`.
        test_fraction: Share of problems reserved for the test split.

    Returns:
        Dicts with keys ``numbers`` (list of ints, in drawn order), ``target`` (int) and ``expression`` (one
        solution).

    Raises:
        RuntimeError: If no new problem can be found (the ranges are too narrow for ``num_problems``).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    if num_numbers < 1 or min_number > max_number or min_target > max_target:
        raise ValueError("Need num_numbers >= 1, min_number <= max_number and min_target <= max_target.")
    rng = random.Random(seed)
    seen: set[tuple[tuple[int, ...], int]] = set()
    problems: list[dict] = []
    failures = 0
    while len(problems) < num_problems:
        numbers = [rng.randint(min_number, max_number) for _ in range(num_numbers)]
        reachable = countdown_reachable_values(numbers)
        targets = sorted(
            int(value) for value in reachable if value.denominator == 1 and min_target <= value <= max_target
        )
        target = rng.choice(targets) if targets else None
        key = (tuple(sorted(numbers)), target)
        if target is None or key in seen or countdown_problem_split(numbers, target, test_fraction) != split:
            failures += 1
            if failures > _MAX_CONSECUTIVE_FAILURES:
                raise RuntimeError(f"Found only {len(problems)} distinct {split} problems out of {num_problems}.")
            continue
        failures = 0
        seen.add(key)
        problems.append({"numbers": numbers, "target": target, "expression": reachable[target]})
    return problems


def generate_countdown_dataset(
    num_problems: int,
    seed: int = 0,
    num_numbers: int = 3,
    min_number: int = 1,
    max_number: int = 100,
    min_target: int = 1,
    max_target: int = 100,
    split: str = "train",
    test_fraction: float = 0.1,
    prompt_style: str = "d1",
    conversational: bool | None = None,
) -> datasets.Dataset:
    """Generate a Countdown dataset ready for a TRL-style trainer.

    Args:
        num_problems: Number of problems (rows).
        seed: Seed of the draw.
        num_numbers: Numbers per problem (d1: 3).
        min_number: Smallest number.
        max_number: Largest number.
        min_target: Smallest target.
        max_target: Largest target.
        split: ``"train"`` or ``"test"``; the two never share a problem for the same ``test_fraction``.
        test_fraction: Share of problems reserved for the test split.
        prompt_style: ``"d1"``, ``"d1_eval"`` or ``"compact"``; see :mod:`trl_dam.tasks.countdown.prompts`.
        conversational: Conversational prompts (``True``) or plain strings (``False``); ``None`` picks
            conversational for the d1 styles and plain text for the compact style.

    Returns:
        A ``datasets.Dataset`` with columns ``prompt``, ``numbers``, ``target`` and ``expression`` (a reference
        solution).
    """
    problems = generate_countdown_problems(
        num_problems, seed, num_numbers, min_number, max_number, min_target, max_target, split, test_fraction
    )
    return datasets.Dataset.from_dict(
        {
            "prompt": [
                build_countdown_prompt(p["numbers"], p["target"], prompt_style, conversational) for p in problems
            ],
            "numbers": [p["numbers"] for p in problems],
            "target": [p["target"] for p in problems],
            "expression": [p["expression"] for p in problems],
        }
    )
