"""Turn a TRL completion (plain text or a list of chat messages) into the text a parser reads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["completion_to_text", "completions_to_texts"]


def _content_to_text(content: Any) -> str:
    """Flatten a message ``content``: a string, or a list of parts such as ``{"type": "text", "text": ...}``."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "".join(parts)
    raise TypeError(f"Unsupported message content of type {type(content).__name__}.")


def completion_to_text(completion: str | Sequence[dict[str, Any]]) -> str:
    """Return the generated text of one completion.

    TRL hands reward functions either *standard* completions (a string) or *conversational* ones (a list of
    ``{"role", "content"}`` messages, usually a single assistant message). For a conversation the contents of
    the assistant messages (messages without a ``role`` count as assistant messages) are concatenated in order,
    so tool or user turns inside a multi-turn completion are ignored.

    Args:
        completion: A string, or a list of message dictionaries.

    Returns:
        The completion text.

    Raises:
        TypeError: If ``completion`` is neither a string nor a list of message dictionaries.
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if isinstance(completion, Sequence) and all(isinstance(message, dict) for message in completion):
        return "".join(
            _content_to_text(message.get("content"))
            for message in completion
            if message.get("role", "assistant") == "assistant"
        )
    raise TypeError(
        f"A completion must be a string or a list of {{'role', 'content'}} messages, got {type(completion).__name__}."
    )


def completions_to_texts(completions: Sequence[str | Sequence[dict[str, Any]]]) -> list[str]:
    """Apply :func:`completion_to_text` to every completion of a batch."""
    return [completion_to_text(completion) for completion in completions]
