r"""Find the arguments of LaTeX ``\boxed{...}`` (and ``\fbox{...}``), with nested braces handled properly."""

from __future__ import annotations

import re

__all__ = ["find_boxed_contents", "last_boxed_content"]

_BOXED = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")


def _braced_argument(text: str, start: int) -> tuple[str, int] | None:
    r"""Read a ``{...}`` group that opens at ``text[start]``; return (content, index after it) or ``None``.

    Escaped braces ``\{`` and ``\}`` are literal characters and do not change the nesting depth.
    """
    depth = 0
    i = start
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i], i + 1
        i += 1
    return None


def find_boxed_contents(text: str) -> list[str]:
    r"""Return the contents of every complete ``\boxed{...}`` / ``\fbox{...}`` in ``text``, in order.

    Braces are matched by depth, so ``\boxed{\frac{1}{2}}`` gives ``\frac{1}{2}``. The brace-less form
    ``\boxed 5`` gives the next whitespace-delimited token. A box whose braces never close (a truncated
    generation) is skipped. The contents are stripped.

    Args:
        text: Text to search.

    Returns:
        The list of box contents (possibly empty).
    """
    contents = []
    position = 0
    while True:
        match = _BOXED.search(text, position)
        if match is None:
            return contents
        i = match.end()
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            group = _braced_argument(text, i)
            if group is None:
                position = match.end()
                continue
            content, position = group
            contents.append(content.strip())
        elif i > match.end():
            token = re.match(r"[^\s$]+", text[i:])
            if token is not None:
                contents.append(token.group(0))
            position = i
        else:
            position = match.end()


def last_boxed_content(text: str) -> str | None:
    r"""Return the content of the last complete ``\boxed{...}`` in ``text``, or ``None`` if there is none."""
    contents = find_boxed_contents(text)
    return contents[-1] if contents else None
