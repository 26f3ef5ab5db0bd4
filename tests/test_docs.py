"""The documentation site (`mkdocs.yml`, `docs/`) stays true to the code.

* every snippet in `docs/snippets/` runs (tiny models, CPU, offline), and every snippet is included by a page;
* every ```python block of a page is an included snippet, or is marked `<!-- not-run: reason -->` on the line above,
  in which case it must still compile, its imports must exist and its keyword arguments must be accepted;
* the home page shows the README's two commands, the quick start stays short, paths the pages name exist;
* the API reference renders every public module, and `mkdocs build --strict` passes (broken links, missing
  cross-references or snippet files fail it) with every public class and function in its inventory;
* the formulas of the built site are typeset in headless Chromium with no network (MathJax ships in the site).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import http.server
import importlib
import importlib.util
import inspect
import json
import os
import pkgutil
import re
import runpy
import shlex
import shutil
import subprocess
import sys
import threading
import time
import zlib
from html.parser import HTMLParser
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SNIPPETS = DOCS / "snippets"
PAGES = sorted(DOCS.rglob("*.md"))
SNIPPET_FILES = sorted(SNIPPETS.glob("*.py"))

FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
INCLUDE = re.compile(r'^--8<--\s+"(?P<path>[^"]+)"$')
NOT_RUN = re.compile(r"^\s*<!-- not-run: (?P<reason>.+?) -->\s*$")
PYTHON_LANGS = {"python", "py", "python3", "pycon"}


def _docs_hooks():
    """docs/hooks.py as a module (it is not a package module: mkdocs loads it by path)."""
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    return hooks


def _blocks(page: Path):
    """``(lang, body lines, line above the fence, line number)`` for every fenced block of a page."""
    text = page.read_text()
    for match in FENCE.finditer(text):
        start = text[: match.start()].count("\n")
        above = [line for line in text[: match.start()].splitlines() if line.strip()]
        indent = len(match["indent"])
        body = [line[indent:] for line in match["body"].splitlines()]
        yield match["lang"], body, above[-1] if above else "", start + 1


def _python_blocks():
    for page in PAGES:
        for lang, body, above, line in _blocks(page):
            if lang in PYTHON_LANGS:
                yield page, body, above, line


def _included_snippet(body: list[str]) -> Path | None:
    """The snippet file a block consists of, or None if the block has code of its own."""
    lines = [line.strip() for line in body if line.strip()]
    if len(lines) == 1 and (match := INCLUDE.match(lines[0])):
        return SNIPPETS / match["path"]
    return None


def _not_run_blocks():
    for page, body, above, line in _python_blocks():
        if _included_snippet(body) is None:
            yield pytest.param("\n".join(body), above, id=f"{page.relative_to(DOCS)}:{line}")


# ---------------------------------------------------------------------------------------------------- pages


def test_docs_exist():
    assert (ROOT / "mkdocs.yml").is_file()
    assert PAGES and SNIPPET_FILES


def test_python_blocks_are_snippets_or_marked_not_run():
    problems = []
    for page, body, above, line in _python_blocks():
        where = f"{page.relative_to(ROOT)}:{line}"
        snippet = _included_snippet(body)
        if snippet is not None:
            if not snippet.is_file():
                problems.append(f"{where}: includes {snippet.relative_to(ROOT)}, which does not exist")
            continue
        marker = NOT_RUN.match(above)
        if marker is None or len(marker["reason"].split()) < 4:
            problems.append(
                f'{where}: a python block must be an include of a docs/snippets file (`--8<-- "name.py"`) or be '
                "preceded by `<!-- not-run: <reason> -->` saying why it cannot run in the tests"
            )
    assert not problems, "\n".join(problems)


def test_every_snippet_is_included_by_a_page():
    included = {_included_snippet(body) for _, body, _, _ in _python_blocks()} - {None}
    orphans = [path.name for path in SNIPPET_FILES if path not in included]
    assert not orphans, f"snippets no page includes (so readers never see them): {orphans}"


@pytest.mark.parametrize(("code", "marker"), list(_not_run_blocks()))
def test_not_run_blocks_compile_import_and_call_with_known_arguments(code, marker):
    """Blocks that cannot run (GPU, downloads) still must not drift from the API: syntax, imports, keyword names."""
    tree = ast.parse(code)
    namespace: dict = {}
    imports = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    exec(compile(ast.Module(body=imports, type_ignores=[]), "<docs block>", "exec"), namespace)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in namespace):
            continue
        target = namespace[node.func.id]
        names = [keyword.arg for keyword in node.keywords if keyword.arg is not None]
        if dataclasses.is_dataclass(target):
            fields = {field.name for field in dataclasses.fields(target)}
            unknown = [name for name in names if name not in fields]
        else:
            parameters = inspect.signature(target).parameters
            if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
                continue
            unknown = [name for name in names if name not in parameters]
        assert not unknown, f"{node.func.id}() has no argument(s) {unknown}"


def _cli_commands():
    """Every `trl-dam` / `-m trl_dam.scripts.dam` command of the pages (shell blocks and inline code): its flags."""
    for page in PAGES:
        text = page.read_text()
        commands = [match.replace("\n", " ") for match in re.findall(r"`(trl-dam [^`]+)`", text)]
        for lang, body, _, _ in _blocks(page):
            if lang in ("bash", "sh", "shell"):
                commands += "\n".join(body).replace("\\\n", " ").splitlines()
        for command in commands:
            words = shlex.split(command, comments=True)
            if "trl_dam.scripts.dam" in words:
                yield pytest.param(words[words.index("trl_dam.scripts.dam") + 1 :], id=f"{page.name}:{command[:40]}")
            elif words and words[0] == "trl-dam":
                yield pytest.param(words[1:], id=f"{page.name}:{command[:40]}")


@pytest.mark.parametrize("argv", list(_cli_commands()))
def test_command_lines_in_the_pages_parse(argv):
    """`trl-dam` commands shown on the pages use flags the script has (parsed only: nothing is built or run)."""
    from trl_dam.scripts.dam import make_parser

    _, unknown = argparse.ArgumentParser.parse_known_args(make_parser(), argv)
    assert not unknown, f"unknown trl-dam flags {unknown}"


def test_home_page_shows_the_readme_commands_and_a_short_quick_start():
    readme_block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    home_blocks = [body for lang, body, _, _ in _blocks(DOCS / "index.md") if lang == "bash"]
    assert home_blocks, "the home page must show the README's commands"
    commands = [line for line in readme_block.splitlines() if line.strip()][:2]
    assert [line for line in home_blocks[0] if line.strip()][:2] == commands
    quickstart = [line for line in (SNIPPETS / "quickstart.py").read_text().splitlines() if line.strip()]
    assert len(quickstart) <= 15, f"the quick start should stay about 15 lines, it has {len(quickstart)}"


def test_home_page_says_what_the_first_command_runs():
    """The sentence under the README's commands names the script the first command launches, not another one."""
    text = (DOCS / "index.md").read_text()
    first_command = re.search(r"```bash\n(.*?)\n", text).group(1)
    script = re.search(r"launch (\S+\.py)", first_command).group(1)
    explanation = text.split("```", 2)[2].strip().split("\n\n")[0]
    first_sentence = explanation.split("). ")[0]
    assert script == "examples/sudoku.py" and f"`{script}`" in first_sentence and "Sudoku demo" in first_sentence
    assert "synthetic" not in first_sentence


def test_repository_paths_named_in_the_pages_exist():
    pattern = re.compile(r"(?<![\w/.-])((?:benchmarks|examples|docs/assets)/[\w./-]*\w)")
    missing = []
    for page in PAGES:
        for path in pattern.findall(page.read_text()):
            if path.startswith("docs/assets/"):
                continue  # written by the benchmark commands the pages show; the hook handles their absence
            if not (ROOT / path).exists():
                missing.append(f"{page.relative_to(ROOT)}: {path}")
    assert not missing, "\n".join(missing)


# ---------------------------------------------------------------------------------------------------- snippets


@pytest.mark.parametrize("snippet", SNIPPET_FILES, ids=lambda path: path.name)
def test_snippet_runs(snippet, tmp_path, monkeypatch, capsys):
    import torch

    monkeypatch.chdir(tmp_path)  # snippets write their outputs (checkpoints, data files) to the working directory
    torch.set_num_threads(1)
    start = time.perf_counter()
    runpy.run_path(str(snippet), run_name="__main__")
    seconds = time.perf_counter() - start
    with capsys.disabled():
        print(f"\n  {snippet.name}: {seconds:.1f}s", end="")


# ---------------------------------------------------------------------------------------------------- API reference


def _public_modules() -> list[str]:
    """Importable `trl_dam` modules with no private component (the `evaluate` metric scripts are not packages)."""
    import trl_dam

    names = [
        info.name
        for info in pkgutil.walk_packages(trl_dam.__path__, "trl_dam.")
        if not any(part.startswith("_") for part in info.name.split("."))
    ]
    return sorted(name for name in names if not _is_package(name)) + ["trl_dam.metrics"]


def _is_package(name: str) -> bool:
    spec = importlib.util.find_spec(name)
    return spec is not None and spec.submodule_search_locations is not None


def _rendered_modules() -> set[str]:
    directive = re.compile(r"^::: (trl_dam[\w.]*)\s*$", re.M)
    return {name for page in (DOCS / "api").glob("*.md") for name in directive.findall(page.read_text())}


def test_api_reference_renders_every_public_module():
    missing = sorted(set(_public_modules()) - _rendered_modules())
    assert not missing, f"add `::: <module>` to a page of docs/api/ for: {missing}"


def _public_objects() -> list[str]:
    """Canonical paths of the classes and functions in the `__all__` of a public module or of its package."""
    paths = set()
    for name in _public_modules():
        module = importlib.import_module(name)
        exported = list(getattr(module, "__all__", []))
        package = importlib.import_module(name.rpartition(".")[0])
        exported += [attr for attr in getattr(package, "__all__", []) if attr not in exported]
        for attr in exported:
            obj = getattr(module, attr, None)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__ == name:
                paths.add(f"{name}.{attr}")
    return sorted(paths)


def _inventory(site: Path) -> set[str]:
    raw = (site / "objects.inv").read_bytes()
    body = raw.split(b"\n", 4)[4]  # four header lines, then zlib
    return {line.split(" ", 1)[0] for line in zlib.decompress(body).decode().splitlines() if line}


@pytest.fixture(scope="module")
def built_site(tmp_path_factory):
    """`mkdocs build --strict` of the docs: the site folder, or the build's failure."""
    pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
    pytest.importorskip("mkdocstrings", reason="the docs extra is not installed: pip install -e '.[docs]'")
    site = tmp_path_factory.mktemp("docs") / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,  # pymdownx.snippets resolves its base paths from the working directory
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return site, result


def test_mkdocs_build_strict(built_site):
    site, result = built_site
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    inventory = _inventory(site)
    undocumented = [path for path in _public_objects() if path not in inventory]
    assert not undocumented, f"public objects missing from the API reference: {undocumented}"
    for page in ("concepts", "grpo_to_dam", "rewards", "tasks", "scaling", "hub", "benchmarks"):
        assert (site / page / "index.html").is_file(), page


# ---------------------------------------------------------------------------------------------------- formulas


class _MathScan(HTMLParser):
    """Counts the `arithmatex` elements of a page and those with a MathJax `mjx-container` inside; keeps their text."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self):
        super().__init__()
        self.depth = 0
        self.open: list[list] = []  # [depth, typeset] of the arithmatex elements being read
        self.formulas = self.typeset = 0
        self.errors = 0
        self.raw_text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "mjx-container" and self.open:
            self.open[-1][1] = True
        self.errors += tag == "mjx-merror"
        if tag in self.VOID:
            return
        self.depth += 1
        if "arithmatex" in (dict(attrs).get("class") or "").split():
            self.open.append([self.depth, False])

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if self.open and self.open[-1][0] == self.depth:
            self.formulas += 1
            self.typeset += self.open.pop()[1]
        self.depth -= 1

    def handle_data(self, data):
        if self.open:
            self.raw_text.append(data)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_formulas_are_typeset_offline_in_a_real_browser(built_site, tmp_path):
    """The built Concepts page, served locally and loaded in headless Chromium with no network, has every formula
    typeset by MathJax (shipped in the site, not fetched from a CDN)."""
    browser = _chromium()
    if browser is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium); .ci/run installs it")
    site, result = built_site
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    page = (site / "concepts" / "index.html").read_text()
    assert "cdn.jsdelivr.net" not in page and "javascripts/mathjax/tex-mml-chtml.js" in page
    assert (site / "javascripts" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()
    assert page.count("\\(") > 20  # what the browser must typeset

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        dom = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
            + [f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=30000", "--dump-dom"]
            + [f"http://127.0.0.1:{server.server_port}/concepts/"],
            capture_output=True,
            text=True,
            timeout=180,
        ).stdout
    finally:
        server.shutdown()
        server.server_close()
    scan = _MathScan()
    scan.feed(dom)
    assert scan.formulas > 20, dom[:2000]
    assert scan.typeset == scan.formulas, f"{scan.formulas - scan.typeset} of {scan.formulas} formulas not typeset"
    assert scan.errors == 0, "MathJax reported TeX errors (mjx-merror)"
    raw = "".join(scan.raw_text)
    assert "\\(" not in raw and "\\[" not in raw, "raw TeX left on the page"


# ---------------------------------------------------------------------------------------------------- hooks


def test_benchmark_tables_come_from_the_json(tmp_path):
    hooks = _docs_hooks()
    missing = hooks.render("synthetic", tmp_path)
    assert "Not generated yet" in missing and "benchmarks/synthetic.py --json" in missing
    run = {
        "task": "pinwheel",
        "method": "dam",
        "model": "tabular",
        "iterations": [10, 20],
        "kl_first_jump": [0.5, 1.25e-4],
        "kl_final_jump": [0.9, 3.5e-3],
        "wall_time_s": 12.3,
    }
    (tmp_path / "synthetic.json").write_text(json.dumps({"model": "tabular", "size": 91, "seed": 0, "runs": [run]}))
    table = hooks.render("synthetic", tmp_path)
    assert "| `dam` | 20 | 1.25e-04 | 3.50e-03 | 12 |" in table
    assert "synthetic.png" not in table  # no figure file, no broken image link

    assert "benchmarks/sudoku_compare.py --json" in hooks.render("sudoku_compare", tmp_path)
    row = {"name": "DAM (lr 3e-4)", "cell_accuracy": 0.5, "puzzle_accuracy": 0.25, "reward_calls": 96, "seconds": 7.4}
    trial = {"method": "DAM", "name": "lr 3e-4", "selected": True, "validation": 0.5, "test": 0.5, "seconds": 7.4}
    report = {"num_test": 32, "budget_calls": 96, "rows": [row], "trials": [trial]}
    (tmp_path / "sudoku_compare.json").write_text(json.dumps(report))
    table = hooks.render("sudoku_compare", tmp_path)
    assert "| DAM (lr 3e-4) | 0.500 | 0.250 | 96 | 7 |" in table and "| DAM | **lr 3e-4** | 0.500 |" in table

    assert "benchmarks/long_sequences.py --trade --json" in hooks.render("long_sequences", tmp_path)
    run = {
        "length": 8,
        "vocab": 3,
        "method": "dam_all_positions",
        "num_generations": 8,
        "num_states": 16,
        "kl": [0.14, 2e-2, 8.5e-3],
        "wall_time": [0.0, 10.0, 21.4],
        "forwards": [0, 100, 200],
        "reward_calls": [0, 64, 128],
    }
    (tmp_path / "long_sequences.json").write_text(json.dumps({"quick": False, "runs": [run]}))
    table = hooks.render("long_sequences", tmp_path)
    assert "| 8 | 3 | `dam_all_positions` | 8 x 16 | 1.40e-01 | 8.50e-03 | 21 | 21 | 200 | 128 |" in table


def test_long_sequences_crossings_table(tmp_path):
    """The decaying-lr table: the cost on every axis at the first evaluation at or below each threshold."""
    hooks = _docs_hooks()
    assert "--lr-schedule cosine" in hooks.render("long_sequences_l8_cosine", tmp_path)
    run = {
        "length": 8,
        "method": "dam_all_jumps",
        "num_generations": 8,
        "num_states": 16,
        "learning_rate": 2e-3,
        "lr_schedule": "cosine",
        "lr_final": 0.0,
        "iterations": [0, 50, 100, 150],
        "kl": [0.14, 2e-2, 8.5e-3, 9e-4],
        "wall_time": [0.0, 10.0, 21.4, 30.2],
        "forwards": [0, 100, 200, 300],
        "reward_calls": [0, 64, 128, 192],
    }
    constant = {**run, "method": "d1", "lr_schedule": "constant", "kl": [0.14, 0.2, 0.3, 0.5]}
    (tmp_path / "long_sequences_l8_cosine.json").write_text(json.dumps({"quick": False, "runs": [run, constant]}))
    table = hooks.render("long_sequences_l8_cosine", tmp_path)
    assert (
        "| 8 | `dam_all_jumps` | 8 x 16 | cosine 0.002 → 0 | 150 | 9.00e-04 | 21 | 200 | 128 | 30 | 300 | 192 | 30 |"
        in table
    )
    assert (
        "| 8 | `d1` | 8 x 16 | constant 0.002 | 150 | 5.00e-01 | never | never | never | never | never | never | 30 |"
        in table
    )


def test_head_positions_table_comes_from_the_json(tmp_path):
    hooks = _docs_hooks()
    assert "benchmarks/head_positions.py --json" in hooks.render("head_positions", tmp_path)
    run = {
        "model": "MDLM-size vocab",
        "vocab": 50257,
        "hidden": 256,
        "layers": 2,
        "length": 128,
        "steps": 8,
        "full": {"seconds_per_step": 0.5, "peak_mib": 200.25},
        "restricted": {"seconds_per_step": 0.125, "peak_mib": 10.0},
        "logits_mib_full": 196.3,
        "logits_mib_restricted": 1.534,
    }
    (tmp_path / "head_positions.json").write_text(json.dumps({"rows": 8, "runs": [run]}))
    table = hooks.render("head_positions", tmp_path)
    assert (
        "| MDLM-size vocab | 50,257 | 256 | 2 | 128 | 8 | 0.5000 | 0.1250 | 4.00x | 200.2 | 10.0 | 196.3 / 1.53 |"
        in table
    )


def test_sudoku_targets_table_leads_over_the_reused_grpo_row(tmp_path):
    hooks = _docs_hooks()
    assert "--dam-targets first_jump all_positions all_jumps" in hooks.render("sudoku_compare_targets", tmp_path)

    def row(name, accuracy):
        return {"name": name, "cell_accuracy": accuracy, "puzzle_accuracy": 0.25, "reward_calls": 96, "seconds": 7.4}

    base = {"folder": "outputs/sudoku_compare/bases/abc"}
    reference = {"budget_calls": 96, "base": base, "rows": [row("DAM (x)", 0.9), row("diffu-GRPO (lr 1e-4)", 0.8)]}
    (tmp_path / "sudoku_compare.json").write_text(json.dumps(reference))
    report = {"num_test": 32, "budget_calls": 96, "base": base, "rows": [row("DAM all_jumps (x)", 0.93)]}
    (tmp_path / "sudoku_compare_targets.json").write_text(json.dumps(report))
    table = hooks.render("sudoku_compare_targets", tmp_path)
    assert "| DAM all_jumps (x) | 0.930 | 0.250 | 96 | 7 | +13.0 points |" in table
    assert "| diffu-GRPO (lr 1e-4), reused | 0.800 | 0.250 | 96 | 7 | +0.0 points |" in table
    assert "not comparable" not in table
    report["base"] = {"folder": "elsewhere/bases/def"}
    (tmp_path / "sudoku_compare_targets.json").write_text(json.dumps(report))
    assert "not comparable" in hooks.render("sudoku_compare_targets", tmp_path)


def test_docstring_notations_are_rewritten_for_mkdocs():
    """The docs build's Griffe extension turns reST / doc-builder notation into mkdocs Markdown (source untouched)."""
    pytest.importorskip("griffe", reason="the docs extra is not installed: pip install -e '.[docs]'")
    spec = importlib.util.spec_from_file_location("docs_griffe_docstrings", DOCS / "griffe_docstrings.py")
    extension = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(extension)
    known = {"sample_ctmc": "trl_dam.core.sampling.sample_ctmc", "DAMConfig": "trl_dam.trainers.dam_config.DAMConfig"}
    docstring = "\n".join(
        [
            r"Uses :func:`sample_ctmc` and [`DAMConfig`], not :class:`torch.Tensor`; :math:`\beta > 0`.",
            "",
            r".. math:: a = b",
            r"          + c",
            "",
            "Parameters:",
            "    > Parameters that control the objective",
            "",
            "    beta (`float`, *optional*, defaults to `1.0`):",
            "        Strength.",
            "    x, y (`Tensor`): inputs.",
        ]
    )
    out = extension.convert(docstring, known.get)
    assert "[`sample_ctmc()`][trl_dam.core.sampling.sample_ctmc]" in out
    assert "[`DAMConfig`][trl_dam.trainers.dam_config.DAMConfig]" in out
    assert "`torch.Tensor`" in out and r"$\beta > 0$" in out
    assert "$$\na = b\n+ c\n$$" in out
    assert "Parameters: Parameters that control the objective\n    beta (float):" in out
    assert "    x (Tensor): inputs.\n    y (Tensor): As `x`." in out


def test_step_cost_table_comes_from_the_json(tmp_path):
    hooks = _docs_hooks()
    assert "--vocab 50257" in hooks.render("step_cost_vocab50k", tmp_path)

    def run(method, step_s):
        return {
            "method": method,
            "step_s": step_s,
            "policy_sampling_s": 1.0,
            "reference_s": 0.5,
            "loss_forward_s": 0.25,
            "backward_s": 0.125,
            "denoiser_rows": 100.0,
            "denoiser_calls": 10.0,
            "trained_tokens_per_gradient_row": 8.0,
        }

    report = {"hidden": 256, "layers": 4, "vocab": 50257, "length": 64}
    report["runs"] = [run("DAM (first_jump, 1 tok/call)", 3.0), run("diffu-GRPO", 2.0)]
    (tmp_path / "step_cost.json").write_text(json.dumps(report))
    table = hooks.render("step_cost", tmp_path)
    assert "vocabulary 50,257" in table
    assert "| DAM (first_jump, 1 tok/call) | 3.00 | 1.00 | 0.50 | 0.25 | 0.12 | 1.50 | 100 | 10 | 8.0 |" in table
    assert "| diffu-GRPO | 2.00 | 1.00 | 0.50 | 0.25 | 0.12 | 1.00 | 100 | 10 | 8.0 |" in table
