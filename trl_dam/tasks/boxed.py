r"""Find the arguments of LaTeX ``\boxed{...}`` (and ``\fbox{...}``), with nested braces handled properly.

The whole text is read once (brace matching with a stack), so the cost is linear in its length even for adversarial
completions such as ``\boxed{`` repeated thousands of times (reward functions call this on every completion).
"""

from __future__ import annotations

import re

__all__ = ["find_boxed_contents", "last_boxed_content"]

_BOX = r"\\(?:boxed|fbox)(?![A-Za-z])"
_BOXED = re.compile(_BOX)
# A backslash escapes the character after it (``\{`` and ``\}`` are literal braces); every other brace counts.
_BRACE_OR_ESCAPE = re.compile(r"\\.|[{}]", re.DOTALL)
# The brace-less form's argument: the next token, which ends at whitespace, ``$`` or the next box.
_BARE_ARGUMENT = re.compile(rf"(?:(?!{_BOX})[^\s$])+")


def _closing_braces(text: str) -> dict[int, int]:
    """Map the index of every ``{`` whose group closes to the index of its ``}`` (one pass, a stack of opens)."""
    closing: dict[int, int] = {}
    opened: list[int] = []
    for token in _BRACE_OR_ESCAPE.finditer(text):
        brace = token.group()
        if brace == "{":
            opened.append(token.start())
        elif brace == "}" and opened:
            closing[opened.pop()] = token.start()
    return closing


def find_boxed_contents(text: str) -> list[str]:
    r"""Return the contents of every complete ``\boxed{...}`` / ``\fbox{...}`` in ``text``, in order.

    Braces are matched by depth, so ``\boxed{\frac{1}{2}}`` gives ``\frac{1}{2}``; a box inside another box's argument
    is part of that argument, not a separate result. The brace-less form ``\boxed 5`` gives the next token (up to
    whitespace, ``$`` or the next box). A box whose braces never close (a truncated generation) is skipped. The
    contents are stripped.

    Args:
        text: Text to search.

    Returns:
        The list of box contents (possibly empty).
    """
    closing = None  # built on the first braced box: most texts have none
    contents = []
    position = 0
    while (match := _BOXED.search(text, position)) is not None:
        position = match.end()
        i = position
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            closing = _closing_braces(text) if closing is None else closing
            end = closing.get(i)
            if end is not None:
                contents.append(text[i + 1 : end].strip())
                position = end + 1
        elif i > match.end() and (token := _BARE_ARGUMENT.match(text, i)) is not None:
            contents.append(token.group())
            position = token.end()
    return contents


def last_boxed_content(text: str) -> str | None:
    r"""Return the content of the last complete ``\boxed{...}`` in ``text``, or ``None`` if there is none."""
    contents = find_boxed_contents(text)
    return contents[-1] if contents else None
