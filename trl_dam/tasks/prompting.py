"""Small helpers shared by the task prompt builders: prompt-style checking and the TRL prompt container."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["as_prompt", "check_prompt_style"]


def check_prompt_style(style: str, allowed: Sequence[str], task: str) -> None:
    """Raise ``ValueError`` if ``style`` is not one of the ``allowed`` prompt styles of ``task``."""
    if style not in allowed:
        raise ValueError(f"Unknown {task} prompt_style {style!r}; expected one of {tuple(allowed)}.")


def as_prompt(content: str, conversational: bool) -> str | list[dict[str, str]]:
    """Wrap prompt text the way TRL expects it.

    Args:
        content: The prompt text.
        conversational: ``True`` for TRL's conversational format (a single user message, to which the trainer
            applies the chat template), ``False`` for the standard format (the plain string).

    Returns:
        ``[{"role": "user", "content": content}]`` or ``content``.
    """
    return [{"role": "user", "content": content}] if conversational else content
