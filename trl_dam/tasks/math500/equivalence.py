"""Mathematical equivalence of two final answers with `math-verify` (``pip install math-verify``).

Both answers are wrapped in ``\\boxed{...}`` and parsed by math-verify's LaTeX/expression parser, then compared
with ``math_verify.verify(gold, prediction)`` (symbolic, numeric, set/interval and text answers). If math-verify
cannot parse the gold answer, the answers are compared as strings with whitespace removed.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

__all__ = ["is_math_verify_available", "math_answers_match", "require_math_verify"]

_INSTALL_HINT = (
    "Checking MATH answers needs the `math-verify` package: `pip install math-verify` "
    "(or `pip install trl-dam[math]`)."
)


def is_math_verify_available() -> bool:
    """Whether the ``math_verify`` package can be imported."""
    try:
        import math_verify  # noqa: F401
    except ImportError:
        return False
    return True


def require_math_verify() -> Any:
    """Import and return the ``math_verify`` module.

    Raises:
        ImportError: With installation instructions, if math-verify is missing.
    """
    try:
        import math_verify
    except ImportError as error:
        raise ImportError(_INSTALL_HINT) from error
    return math_verify


def _timeouts() -> tuple[int | None, int | None]:
    """math-verify's timeouts use ``signal.alarm``, which only works in the main thread; disable them elsewhere."""
    if threading.current_thread() is threading.main_thread():
        return 5, 5
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    return None, None


def math_answers_match(prediction: str | None, gold: str) -> bool:
    """Whether a predicted final answer is mathematically equivalent to the gold answer.

    Args:
        prediction: Extracted final answer (e.g. ``"\\frac{1}{2}"``), or ``None`` (never matches).
        gold: Gold final answer.

    Returns:
        ``True`` if math-verify finds them equivalent (or, when the gold answer does not parse, if they are equal
        strings up to whitespace).

    Raises:
        ImportError: If math-verify is not installed.
    """
    math_verify = require_math_verify()
    if prediction is None:
        return False
    parsing_timeout, verify_timeout = _timeouts()
    gold_parsed = math_verify.parse(f"\\boxed{{{gold}}}", parsing_timeout=parsing_timeout)
    if not gold_parsed:
        return "".join(prediction.split()) == "".join(gold.split())
    predicted = math_verify.parse(f"\\boxed{{{prediction}}}", parsing_timeout=parsing_timeout)
    if not predicted:
        return False
    return bool(math_verify.verify(gold_parsed, predicted, timeout_seconds=verify_timeout))
