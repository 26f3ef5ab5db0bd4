"""MkDocs hooks: benchmark tables rendered from the JSON the benchmark scripts write, so the pages only ever show
measured numbers.

A page line ``<!-- benchmark: NAME -->`` is replaced by the table built from ``docs/assets/NAME.json`` (and its
figure ``docs/assets/NAME.png`` when present). When the JSON is missing, a notice with the regenerating command
takes its place instead of numbers.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
_MARKER = re.compile(r"^<!-- benchmark: (?P<name>[\w-]+) -->$", re.M)

#: How to regenerate each benchmark's files (shown on the page next to its table).
COMMANDS = {
    "synthetic": "python benchmarks/synthetic.py --json docs/assets/synthetic.json --figure docs/assets/synthetic.png",
    "sudoku_compare": "python benchmarks/sudoku_compare.py --json docs/assets/sudoku_compare.json",
}


def on_page_markdown(markdown: str, page, config, files, **kwargs) -> str:
    depth = page.file.src_uri.count("/")
    return _MARKER.sub(lambda m: render(m["name"], ASSETS, "../" * depth + "assets/"), markdown)


def render(name: str, assets: Path = ASSETS, url_prefix: str = "assets/") -> str:
    """The Markdown that replaces ``<!-- benchmark: name -->``."""
    path = assets / f"{name}.json"
    if not path.is_file():
        return (
            '!!! warning "Not generated yet"\n'
            f"    `docs/assets/{name}.json` is missing, so no numbers are shown. Regenerate with:\n\n"
            f"        {COMMANDS[name]}\n"
        )
    data = json.loads(path.read_text())
    text = RENDERERS[name](data)
    printed = assets / f"{name}_table.txt"
    if printed.is_file():
        text += f"\nThe script's printed table, every evaluation point included: [{printed.name}]({url_prefix}{printed.name}).\n"
    figure = assets / f"{name}.png"
    if figure.is_file():
        text += f"\n![{name} benchmark figure]({url_prefix}{figure.name})\n"
    return text


def _synthetic(data: dict) -> str:
    runs = data["runs"]
    lines = [
        f"Model `{data['model']}`, grid {data['size']}x{data['size']}, seed {data['seed']}. "
        "KL at the last evaluation; lower is better.",
        "",
    ]
    tasks = list(dict.fromkeys(run["task"] for run in runs))
    for task in tasks:
        lines += [
            f"**{task}**",
            "",
            "| method | iterations | KL(p\\* ‖ p) after jump 1 | KL(p\\* ‖ p) after jump 2 | wall time (s) |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for run in (r for r in runs if r["task"] == task):
            lines.append(
                f"| `{run['method']}` | {run['iterations'][-1]} | {_sci(run['kl_first_jump'][-1])} | "
                f"{_sci(run['kl_final_jump'][-1])} | {run['wall_time_s']:.0f} |"
            )
        lines.append("")
    return "\n".join(lines)


def _sudoku_compare(data: dict) -> str:
    lines = [
        f"{data['num_test']} held-out puzzles (solution grids never seen in training), greedy low-confidence decoding "
        f"at 16 tokens; each fine-tuning run gets {data['budget_calls']} reward calls.",
        "",
        "| method | blank-cell accuracy | puzzles solved | reward calls | wall time (s) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in data["rows"]:
        lines.append(
            f"| {row['name']} | {row['cell_accuracy']:.3f} | {row['puzzle_accuracy']:.3f} | {row['reward_calls']} | "
            f"{row['seconds']:.0f} |"
        )
    lines += [
        "",
        "Hyper-parameter trials, the same number per method, selected (**bold**) by blank-cell accuracy on validation "
        "puzzles drawn from the training grids:",
        "",
        "| method | trial | validation accuracy | held-out accuracy | wall time (s) |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for trial in data["trials"]:
        name = f"**{trial['name']}**" if trial["selected"] else trial["name"]
        lines.append(
            f"| {trial['method']} | {name} | {trial['validation']:.3f} | {trial['test']:.3f} | {trial['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def _sci(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.2e}"


RENDERERS = {"synthetic": _synthetic, "sudoku_compare": _sudoku_compare}
