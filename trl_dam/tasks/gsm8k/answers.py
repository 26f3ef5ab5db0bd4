r"""GSM8K answers: the gold number after ``####`` and the number a completion gives.

Two readers:

* :func:`extract_gsm8k_answer` is the evaluation parser (d1's rule): the first number of the first
  ``\boxed{...}`` that contains a number; otherwise the last number of the last ``<answer>`` block; otherwise
  ``None``.
* :func:`extract_gsm8k_tagged_answer` is what the training rewards read: the content of the last ``<answer>``
  block (or of the last box inside it), with ``$``, thousands separators and a final period removed. It must be
  a bare number to count as correct, so the reward keeps asking for a clean answer.

Numbers are compared as floats with a relative tolerance of 1e-6 (d1 compares ``float`` values).
"""

from __future__ import annotations

import re

from trl_dam.tasks.answer_format import extract_answer_tag
from trl_dam.tasks.boxed import find_boxed_contents, last_boxed_content

__all__ = [
    "extract_gsm8k_answer",
    "extract_gsm8k_gold",
    "extract_gsm8k_tagged_answer",
    "find_numbers",
    "gsm8k_is_correct",
    "numbers_match",
    "parse_number",
]

_NUMBER = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?|-?\.\d+")
_STRIP = ("\\$", "$", "\\%", "%", "\\!", "\\,")


def find_numbers(text: str) -> list[str]:
    """Return the numbers written in ``text``, in order, without thousands separators (``"1,000"`` -> ``"1000"``)."""
    return [match.replace(",", "") for match in _NUMBER.findall(text)]


def _clean(text: str) -> str:
    """Drop currency/percent signs, LaTeX spacing, thousands separators, outer whitespace and a final period."""
    for token in _STRIP:
        text = text.replace(token, "")
    text = text.strip()
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?\.?", text):
        text = text.replace(",", "")
    return text.removesuffix(".").strip()


def parse_number(text: str) -> float | None:
    """Parse ``text`` as one number, ignoring ``$``, ``%``, thousands separators and a final period; else ``None``."""
    cleaned = _clean(text)
    if not re.fullmatch(r"-?(\d+(\.\d*)?|\.\d+)", cleaned):
        return None
    return float(cleaned)


def numbers_match(prediction: str | None, gold: str) -> bool:
    """Whether two number strings are equal up to a relative tolerance of 1e-6 (``None`` never matches)."""
    if prediction is None:
        return False
    predicted, expected = parse_number(prediction), parse_number(gold)
    if predicted is None or expected is None:
        return False
    return abs(predicted - expected) <= 1e-6 * max(1.0, abs(expected))


def extract_gsm8k_gold(answer: str) -> str:
    """Return the final answer of a GSM8K ``answer`` field: the text after the last ``####``, commas removed.

    Raises:
        ValueError: If the field has no ``####``.
    """
    if "####" not in answer:
        raise ValueError(f"GSM8K answer without '####': {answer[-80:]!r}")
    return answer.rsplit("####", 1)[1].strip().replace(",", "")


def extract_gsm8k_answer(text: str) -> str | None:
    """Evaluation parser: return the number a completion gives (see the module docstring), or ``None``."""
    for content in find_boxed_contents(text):
        numbers = find_numbers(content)
        if numbers:
            return numbers[0]
    answer = extract_answer_tag(text)
    if answer is not None:
        numbers = find_numbers(answer)
        if numbers:
            return numbers[-1]
    return None


def extract_gsm8k_tagged_answer(text: str) -> str | None:
    """Training reader: the cleaned content of the last ``<answer>`` block (or of its last box), or ``None``."""
    answer = extract_answer_tag(text)
    if answer is None:
        return None
    boxed = last_boxed_content(answer)
    return _clean(answer if boxed is None else boxed)


def gsm8k_is_correct(text: str, gold: str) -> bool:
    """Whether a completion's answer (evaluation parser) equals the gold number."""
    return numbers_match(extract_gsm8k_answer(text), gold)
