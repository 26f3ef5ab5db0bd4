"""MkDocs hooks: benchmark tables rendered from the JSON the benchmark scripts write, so the pages only ever show
measured numbers, and MathJax shipped inside the site instead of loaded from a CDN.

A page line ``<!-- benchmark: NAME -->`` is replaced by the table built from ``docs/assets/NAME.json`` (and its
figures ``docs/assets/NAME.png`` and ``docs/assets/NAME_densities.png`` when present). When the JSON is missing, a notice with the regenerating command
takes its place instead of numbers.

MathJax 3 comes from the ``django-static-mathjax`` package of the docs extra (a copy of npm's ``mathjax``; its
Python package is ``mathjax``). :func:`on_files` adds the files the TeX-to-HTML component needs to the site under
``javascripts/mathjax/``, so formulas render where no CDN is reachable (``mkdocs serve`` offline, air-gapped
clusters).
"""

from __future__ import annotations

import importlib.util
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
    "sudoku_compare_targets": "python benchmarks/sudoku_compare.py --methods dam --dam-targets first_jump "
    "all_positions all_jumps --dam-trials 'lr 3e-4, 2 tokens/step' --json docs/assets/sudoku_compare_targets.json",
    "long_sequences": "python benchmarks/long_sequences.py --trade --json docs/assets/long_sequences.json "
    "--figure docs/assets/long_sequences.png",
    "long_sequences_l8_cosine": "OMP_NUM_THREADS=1 python benchmarks/long_sequences.py --lengths 8 --iterations 2000 "
    "--evaluations 40 --lr-schedule cosine --learning-rate 2e-3 --json docs/assets/long_sequences_l8_cosine.json "
    "--figure docs/assets/long_sequences_l8_cosine.png",
    "long_sequences_l8_cosine_horizons": "OMP_NUM_THREADS=1 python benchmarks/long_sequences.py --lengths 8 --methods "
    "dam_first_jump dam_all_positions --iterations 4000 6000 --evaluations 40 --lr-schedule cosine "
    "--learning-rate 2e-3 --json docs/assets/long_sequences_l8_cosine_horizons.json "
    "--figure docs/assets/long_sequences_l8_cosine_horizons.png",
    "long_sequences_l8_constant": "OMP_NUM_THREADS=1 python benchmarks/long_sequences.py --lengths 8 --methods "
    "dam_first_jump dam_all_jumps --iterations 2000 --evaluations 40 --json docs/assets/long_sequences_l8_constant.json "
    "--figure docs/assets/long_sequences_l8_constant.png",
    "head_positions": "python benchmarks/head_positions.py --json docs/assets/head_positions.json",
    "step_cost": "OMP_NUM_THREADS=1 python benchmarks/step_cost.py --json docs/assets/step_cost.json",
    "step_cost_vocab50k": "OMP_NUM_THREADS=1 python benchmarks/step_cost.py --vocab 50257 --methods first_jump "
    "all_positions diffu-GRPO --json docs/assets/step_cost_vocab50k.json",
}


#: Where the MathJax files go in the site (``mkdocs.yml`` loads ``{MATHJAX_SITE_DIR}/tex-mml-chtml.js``).
MATHJAX_SITE_DIR = "javascripts/mathjax"
#: The parts of MathJax's ``es5`` folder the page component loads: itself, the TeX extensions it loads on demand
#: (``\\boldsymbol`` ...), its fonts, and the menu and accessibility components it loads at start-up.
MATHJAX_FILES = ("tex-mml-chtml.js", "input/tex/extensions", "output/chtml/fonts/woff-v2", "ui", "a11y")


def mathjax_es5_dir() -> Path:
    """The ``es5`` folder of the installed MathJax package."""
    from mkdocs.exceptions import PluginError

    spec = importlib.util.find_spec("mathjax")
    folder = Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax" / "es5" if spec else None
    if folder is None or not (folder / "tex-mml-chtml.js").is_file():
        raise PluginError(
            "MathJax is not installed, so the formulas cannot render offline: pip install -e '.[docs]' "
            "(django-static-mathjax ships MathJax 3)."
        )
    return folder


def on_files(files, config, **kwargs):
    from mkdocs.structure.files import File

    es5 = mathjax_es5_dir()
    for entry in MATHJAX_FILES:
        paths = (
            [es5 / entry] if (es5 / entry).is_file() else sorted(p for p in (es5 / entry).rglob("*") if p.is_file())
        )
        for path in paths:
            uri = f"{MATHJAX_SITE_DIR}/{path.relative_to(es5).as_posix()}"
            files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files


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
    text = RENDERERS[name](data, assets)
    printed = assets / f"{name}_table.txt"
    if printed.is_file():
        text += f"\nThe script's printed table, every evaluation point included: [{printed.name}]({url_prefix}{printed.name}).\n"
    for figure in (assets / f"{name}.png", assets / f"{name}_densities.png"):
        if figure.is_file():
            text += f"\n![{name} benchmark figure]({url_prefix}{figure.name})\n"
    return text


def _synthetic(data: dict, assets: Path) -> str:
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


def _sudoku_compare(data: dict, assets: Path) -> str:
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


def _long_sequences(data: dict, assets: Path) -> str:
    lines = [
        "Exact KL(p\\* ‖ p) at the start and at the last evaluation; the cost columns are totals of the run (wall "
        "time excludes evaluations; forwards count sequence rows through the policy or the base, sampling and "
        "training). *First hit*: the first evaluation point with KL at or below the threshold.",
        "",
        "| L | V | method | K x states | KL start | KL end | wall to KL ≤ 1e-2 (s) | wall (s) | forwards | "
        "reward calls |",
        "| ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in data["runs"]:
        hit = next((w for w, kl in zip(run["wall_time"], run["kl"]) if kl <= 1e-2), None)
        lines.append(
            f"| {run['length']} | {run['vocab']} | `{run['method']}` | {run['num_generations']} x {run['num_states']} | "
            f"{_sci(run['kl'][0])} | {_sci(run['kl'][-1])} | {'never' if hit is None else f'{hit:.0f}'} | "
            f"{run['wall_time'][-1]:.0f} | {run['forwards'][-1]} | {run['reward_calls'][-1]} |"
        )
    return "\n".join(lines) + "\n"


def _long_sequences_crossings(data: dict, assets: Path) -> str:
    """One row per run: the cost at the first evaluation with KL <= 1e-2 and with KL <= 1e-3, and the run's totals."""
    lines = [
        "*KL ≤ x*: wall time, forwards and reward calls at the first evaluation with the exact KL at or below x. "
        "Steps: the run's length, over which its learning-rate schedule runs.",
        "",
        "| L | method | K x states | learning rate | steps | KL end | KL ≤ 1e-2: wall (s) | forwards | reward calls | "
        "KL ≤ 1e-3: wall (s) | forwards | reward calls | run wall (s) |",
        "| ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in data["runs"]:
        schedule = (
            f"cosine {run['learning_rate']:g} → {run['lr_final']:g}"
            if run.get("lr_schedule") == "cosine"
            else f"constant {run['learning_rate']:g}"
        )
        cells = []
        for threshold in (1e-2, 1e-3):
            index = next((i for i, kl in enumerate(run["kl"]) if kl <= threshold), None)
            cells += (
                ["never"] * 3
                if index is None
                else [f"{run['wall_time'][index]:.0f}", str(run["forwards"][index]), str(run["reward_calls"][index])]
            )
        lines.append(
            f"| {run['length']} | `{run['method']}` | {run['num_generations']} x {run['num_states']} | {schedule} | "
            f"{run['iterations'][-1]} | {_sci(run['kl'][-1])} | {' | '.join(cells)} | {run['wall_time'][-1]:.0f} |"
        )
    return "\n".join(lines) + "\n"


def _sudoku_compare_targets(data: dict, assets: Path) -> str:
    """DAM's rows per `dam_target`, each with its lead over the diffu-GRPO row of ``sudoku_compare.json`` (reused, not
    rerun: same base and budget, which the notice under the table checks)."""
    reference = json.loads((assets / "sudoku_compare.json").read_text())
    grpo = next(row for row in reference["rows"] if row["name"].startswith("diffu-GRPO"))
    same_base = Path(data["base"]["folder"]).name == Path(reference["base"]["folder"]).name
    lines = [
        f"{data['num_test']} held-out puzzles, greedy low-confidence decoding at 16 tokens; each fine-tuning run gets "
        f"{data['budget_calls']} reward calls. The diffu-GRPO row is reused from `sudoku_compare.json`, not rerun.",
        "",
        "| method | blank-cell accuracy | puzzles solved | reward calls | wall time (s) | lead over diffu-GRPO |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in [*data["rows"], {**grpo, "name": f"{grpo['name']}, reused"}]:
        lead = 100 * (row["cell_accuracy"] - grpo["cell_accuracy"])
        lines.append(
            f"| {row['name']} | {row['cell_accuracy']:.3f} | {row['puzzle_accuracy']:.3f} | {row['reward_calls']} | "
            f"{row['seconds']:.0f} | {lead:+.1f} points |"
        )
    if not same_base or data["budget_calls"] != reference["budget_calls"]:
        lines += ["", "**The base or the budget differs from `sudoku_compare.json`'s: the leads are not comparable.**"]
    return "\n".join(lines) + "\n"


def _head_positions(data: dict, assets: Path) -> str:
    lines = [
        f"`sample_ctmc` on K = {data['rows']} copies of a half-masked state, policy + reference, one token per call, "
        "CPU, one thread. Seconds per sampler step: the fastest of the repeats; peak: the process's peak resident set "
        "during sampling minus its resident set before (MiB). The last column is computed: one float32 logits tensor "
        "of a K-row call.",
        "",
        "| model | V | H | layers | L | steps | s/step, full head | s/step, restricted | speed-up | "
        "peak MiB, full | peak MiB, restricted | logits MiB, full / restricted |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in data["runs"]:
        full, restricted = run["full"], run["restricted"]
        lines.append(
            f"| {run['model']} | {run['vocab']:,} | {run['hidden']} | {run['layers']} | {run['length']} | "
            f"{run['steps']} | {full['seconds_per_step']:.4f} | {restricted['seconds_per_step']:.4f} | "
            f"{full['seconds_per_step'] / restricted['seconds_per_step']:.2f}x | {full['peak_mib']:.1f} | "
            f"{restricted['peak_mib']:.1f} | {run['logits_mib_full']:.1f} / {run['logits_mib_restricted']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def _step_cost(data: dict, assets: Path) -> str:
    runs = data["runs"]
    grpo = next((run["step_s"] for run in runs if run["method"] == "diffu-GRPO"), math.nan)
    lines = [
        f"Hidden {data['hidden']}, {data['layers']} layers, vocabulary {data.get('vocab', 18):,}, N = {data['length']} "
        "completion tokens, 16 rollouts per optimizer step, CPU, one thread; seconds per step (mean over the measured "
        "steps, after a warm-up step), split by the trainers' own pieces. Rows: sequences through a denoiser per step; "
        "calls: sequential denoiser calls per step; tokens/row: trained token targets per gradient-forward row.",
        "",
        "| run | s/step | policy sampling | reference | loss forward | backward | × diffu-GRPO | rows | calls | "
        "tokens/row |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in runs:
        lines.append(
            f"| {run['method']} | {run['step_s']:.2f} | {run['policy_sampling_s']:.2f} | {run['reference_s']:.2f} | "
            f"{run['loss_forward_s']:.2f} | {run['backward_s']:.2f} | {run['step_s'] / grpo:.2f} | "
            f"{run['denoiser_rows']:.0f} | {run['denoiser_calls']:.0f} | {run['trained_tokens_per_gradient_row']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def _sci(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.2e}"


RENDERERS = {
    "synthetic": _synthetic,
    "sudoku_compare": _sudoku_compare,
    "sudoku_compare_targets": _sudoku_compare_targets,
    "head_positions": _head_positions,
    "step_cost": _step_cost,
    "step_cost_vocab50k": _step_cost,
    "long_sequences": _long_sequences,
    "long_sequences_l8_cosine": _long_sequences_crossings,
    "long_sequences_l8_cosine_horizons": _long_sequences_crossings,
    "long_sequences_l8_constant": _long_sequences_crossings,
}
