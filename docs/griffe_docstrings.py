"""Griffe extension for the docs build: renders the notations `trl_dam` docstrings mix, without touching the code.

The package's docstrings follow two conventions at once: Sphinx roles in `trl_dam.core` and friends
(``:math:`\\beta` ``, ``.. math::`` blocks, ``:func:`sample_ctmc` ``) and Hugging Face doc-builder syntax in the
trainers (``[`DAMConfig`]`` links, ``> Parameters that control ...`` sub-headings inside ``Parameters:``). Before
mkdocstrings parses a docstring (Google style), this extension rewrites it into what mkdocs understands:

* ``:math:`x` `` -> ``$x$`` and ``.. math:: x`` blocks -> ``$$ x $$`` (rendered by `pymdownx.arithmatex`);
* ``:func:/:class:/:mod:/:data:/:attr:/:meth:`name` `` and ``[`name`]`` -> an autorefs link to the object's
  canonical path when the name resolves inside `trl_dam` (so a reference to an object missing from the API pages
  fails `mkdocs build --strict`), else inline code (e.g. ``transformers.Trainer``);
* ``> Parameters that control X`` group lines inside a ``Parameters:`` section -> a new ``Parameters: X`` section
  (a titled table);
* ``a, b (type): text`` entries of an ``Args:`` section -> one entry per name.

Only the text handed to the docs build changes; the source files are never modified.
"""

from __future__ import annotations

import re

import griffe

_ROLE = re.compile(r":(?P<role>func|class|mod|data|attr|meth|obj|exc):`(?P<name>[^`]+)`")
_INLINE_MATH = re.compile(r":math:`(?P<tex>[^`]+)`")
_HF_LINK = re.compile(r"\[`(?P<name>~?[A-Za-z_][\w.]*)`\](?![\[(])")
_MATH_DIRECTIVE = re.compile(r"^(?P<indent>\s*)\.\. math::\s*(?P<first>.*)$")
_HF_GROUP = re.compile(r"^(?P<indent>\s*)> (?P<title>.*?)\s*$")
_SECTION_HEADER = re.compile(r"^(?P<indent>\s*)(?:Parameters|Args|Arguments):\s*$")

#: Namespaces searched, in order, for a bare name such as [`DAMConfig`].
_PUBLIC_NAMESPACES = (
    "trl_dam.trainers",
    "trl_dam.core",
    "trl_dam.models",
    "trl_dam.tasks",
    "trl_dam.rewards",
    "trl_dam.metrics",
    "trl_dam.synthetic",
)


class TrlDamDocstrings(griffe.Extension):
    """Rewrite Sphinx / doc-builder notation in every `trl_dam` docstring into mkdocs Markdown."""

    def on_object(self, *, obj: griffe.Object, loader: griffe.GriffeLoader, **kwargs) -> None:
        if obj.docstring is None or not obj.path.startswith("trl_dam"):
            return
        obj.docstring.value = convert(obj.docstring.value, lambda name: _resolve(name, obj, loader))


def convert(text: str, resolve) -> str:
    """Apply every rewrite to one docstring; ``resolve(name)`` returns a canonical path or ``None``."""
    text = _math_blocks(text)
    text = _rst_tables(text)
    text = _LITERAL_INTRO.sub(lambda m: m["head"] + (":" if m["head"].strip() else ""), text)
    text = _INLINE_MATH.sub(lambda m: f"${m['tex'].strip()}$", text)
    text = _ITEM_TYPE.sub(_clean_item_type, text)
    text = _ROLE.sub(lambda m: _link(m["name"], resolve, role=m["role"]), text)
    text = _HF_LINK.sub(lambda m: _link(m["name"], resolve), text)
    return _split_multi_name_items(_parameter_groups(text))


#: An Args/Parameters entry whose type is written the doc-builder way: ``name (`float`, *optional*, defaults to `1.0`):``.
_ITEM_TYPE = re.compile(r"^(?P<head>[ \t]+\*{0,2}\w+(?:, \w+)* )\((?P<type>[^()\n]*`[^()\n]*)\):", re.M)


def _clean_item_type(match: re.Match) -> str:
    """Keep only the type: drop ``*optional*`` and ``defaults to ...`` (the signature shows defaults) and markup."""
    kind = re.sub(r",?\s*\*optional\*", "", match["type"])
    kind = re.sub(r",?\s*defaults to .*$", "", kind)
    kind = re.sub(r"\[`~?(?:[\w.]*\.)?(\w+)`\]", r"\1", kind)  # [`~pkg.Name`] -> Name
    kind = kind.replace("`", "").strip()
    return f"{match['head']}({kind}):" if kind else f"{match['head'].rstrip()}:"


def _link(name: str, resolve, role: str | None = None) -> str:
    short = name.startswith("~")
    name = name.lstrip("~")
    shown = name.rsplit(".", 1)[-1] if short else name
    if role in ("func", "meth"):
        shown += "()"
    target = resolve(name)
    return f"[`{shown}`][{target}]" if target else f"`{shown}`"


#: "Typical use::" (reST literal-block intro) -> "Typical use:"; the indented block below is Markdown code already.
_LITERAL_INTRO = re.compile(r"(?P<head>^[^\n]*?)::(?=[ \t]*\n[ \t]*\n[ \t]+\S)", re.M)
_TABLE_BORDER = re.compile(r"^(?P<indent>[ \t]*)=+(?:[ \t]+=+)+[ \t]*$")


def _rst_tables(text: str) -> str:
    """reST simple tables (``=====  =====`` borders) -> Markdown tables; continuation rows join the row above."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        border = _TABLE_BORDER.match(lines[i])
        if not border:
            out.append(lines[i])
            i += 1
            continue
        spans = [(m.start(), m.end()) for m in re.finditer(r"=+", lines[i])]
        rows: list[list[str]] = []
        header_rows = 0
        borders = 1
        i += 1
        while i < len(lines) and borders < 3:
            if _TABLE_BORDER.match(lines[i]):
                borders += 1
                header_rows = header_rows or len(rows)
            elif lines[i].strip():
                cells = []
                for k, (start, _end) in enumerate(spans):
                    stop = spans[k + 1][0] if k + 1 < len(spans) else len(lines[i])
                    cells.append(lines[i][start:stop].strip().replace("|", "\\|"))
                if rows and not cells[0]:
                    rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells)]
                else:
                    rows.append(cells)
            i += 1
        indent = border["indent"]
        header, body = rows[: header_rows or 1], rows[header_rows or 1 :]
        out.append(f"{indent}| " + " | ".join(" ".join(col) for col in zip(*header)) + " |")
        out.append(f"{indent}|" + " --- |" * len(spans))
        out.extend(f"{indent}| " + " | ".join(row) + " |" for row in body)
    return "\n".join(out)


def _math_blocks(text: str) -> str:
    """``.. math:: a`` plus its indented continuation lines -> a ``$$`` display block at the same indentation."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = _MATH_DIRECTIVE.match(lines[i])
        if not match:
            out.append(lines[i])
            i += 1
            continue
        indent = match["indent"]
        body = [match["first"].strip()] if match["first"].strip() else []
        # Python-Markdown nests blocks in a list item only at 4 spaces: a block indented less (a reST list item's
        # 2-space continuation) would not be recognised as math, so it goes to the left margin instead.
        directive_indent = len(indent)
        indent = indent if directive_indent >= 4 else ""
        i += 1
        while i < len(lines) and lines[i].strip() and _indent(lines[i]) > directive_indent:
            body.append(lines[i].strip())
            i += 1
        out.extend([f"{indent}$$", *(f"{indent}{line}" for line in body), f"{indent}$$"])
    return _dedent_shallow_display_math("\n".join(out))


def _dedent_shallow_display_math(text: str) -> str:
    """A ``$$ ... $$`` block indented by 1-3 spaces (inside a reST-style list item) -> the left margin."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        shift = _indent(lines[i])
        if lines[i].lstrip().startswith("$$") and 0 < shift < 4:
            j = i
            while j < len(lines) and not (lines[j].rstrip().endswith("$$") and (j > i or len(lines[j].strip()) > 2)):
                j += 1
            for k in range(i, min(j, len(lines) - 1) + 1):
                lines[k] = lines[k][min(shift, _indent(lines[k])) :]
            i = j
        i += 1
    return "\n".join(lines)


def _parameter_groups(text: str) -> str:
    """Turn doc-builder ``> Parameters that control X`` group lines into titled Google ``Parameters:`` sections."""
    lines = text.split("\n")
    out: list[str] = []
    section_indent: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        header = _SECTION_HEADER.match(line)
        group = _HF_GROUP.match(line)
        if header:
            section_indent = header["indent"]
            # "Parameters:" directly followed by a group line: merge them into one titled header.
            following = lines[i + 1] if i + 1 < len(lines) else ""
            first_group = _HF_GROUP.match(following)
            if first_group:
                out.append(f"{section_indent}Parameters: {first_group['title']}")
                i += 2
                while i < len(lines) and not lines[i].strip():
                    i += 1
                continue
            out.append(line)
        elif section_indent is not None and line.strip() and _indent(line) <= len(section_indent):
            section_indent = None  # left the Parameters section: "> ..." below is an ordinary quote
            out.append(line)
        elif group and section_indent is not None:
            while out and not out[-1].strip():
                out.pop()
            out.extend(["", f"{section_indent}Parameters: {group['title']}"])
            i += 1
            while i < len(lines) and not lines[i].strip():
                i += 1
            continue
        else:
            out.append(line)
        i += 1
    return "\n".join(out)


def _resolve(name: str, obj: griffe.Object, loader: griffe.GriffeLoader) -> str | None:
    """Canonical path of ``name`` seen from ``obj`` (relative, module-level, then public namespaces), or None."""
    if name.startswith("."):
        # Relative module reference (":mod:`.teachers`"): relative to the package of obj's module.
        package = obj.module.parent if obj.module.parent is not None else obj.module
        name = f"{package.path}{name}"
    candidates = [name]
    scope: griffe.Object | None = obj
    while scope is not None:
        candidates.append(f"{scope.path}.{name}")
        scope = scope.parent
    candidates += [f"{namespace}.{name}" for namespace in _PUBLIC_NAMESPACES]
    for path in candidates:
        if not path.startswith("trl_dam"):
            continue
        try:
            target = loader.modules_collection[path]
        except (KeyError, ValueError, AttributeError, griffe.AliasResolutionError):
            continue
        try:
            while isinstance(target, griffe.Alias):
                target = target.final_target
        except (griffe.AliasResolutionError, griffe.CyclicAliasError):
            continue
        if not target.path.startswith("trl_dam"):
            return None
        if target.is_attribute and target.docstring is None and target.parent is not None:
            # Undocumented attributes (dataclass fields described in their class's docstring) are not rendered
            # on their own: link to the class that documents them.
            return target.parent.path
        return target.path
    return None


_MULTI_NAME_ITEM = re.compile(r"^(?P<indent>\s+)(?P<names>\w+(?:, \w+)+)(?P<type> \([^)]*\))?(?P<rest>:.*)$")


def _split_multi_name_items(text: str) -> str:
    """``a, b (type): text`` in an Args section -> one entry for ``a`` and one for ``b`` ("As `a`.")."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = _MULTI_NAME_ITEM.match(lines[i])
        if not match:
            out.append(lines[i])
            i += 1
            continue
        indent, names = match["indent"], match["names"].split(", ")
        kind = match["type"] or ""
        out.append(f"{indent}{names[0]}{kind}{match['rest']}")
        i += 1
        while i < len(lines) and lines[i].strip() and len(lines[i]) - len(lines[i].lstrip()) > len(indent):
            out.append(lines[i])
            i += 1
        out.extend(f"{indent}{name}{kind}: As `{names[0]}`." for name in names[1:])
    return "\n".join(out)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())
