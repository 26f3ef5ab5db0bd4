"""Smoke runs of the benchmarks' `--quick` modes: they run end to end, print their table and write the same figures
as JSON (the full runs are too long for the test suite; their figures are in docs/assets)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_benchmark(name: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), "--quick", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.filterwarnings("ignore")
def test_sudoku_compare_quick(tmp_path):
    out = tmp_path / "compare.json"
    printed = run_benchmark(
        "sudoku_compare", "--json", str(out), "--output-dir", str(tmp_path / "run"), "--base-dir", str(tmp_path / "b")
    )
    report = json.loads(out.read_text())
    assert report["budget_calls"] == 120 and report["num_test"] == 32
    names = [row["name"] for row in report["rows"]]
    assert names[0] == "base, greedy" and any(n.startswith("DAM") for n in names)
    assert any(n.startswith("diffu-GRPO") for n in names) and any("SVDD" in n for n in names)
    for row in report["rows"]:
        assert 0.0 <= row["cell_accuracy"] <= 1.0 and 0.0 <= row["puzzle_accuracy"] <= row["cell_accuracy"] + 1e-9
        line = next(line for line in printed.splitlines() if line.startswith(row["name"]))
        assert f"{row['cell_accuracy']:.3f}" in line  # the printed table shows the JSON's figures
    fine_tuned = [row for row in report["rows"] if not row["name"].startswith("base")]
    assert all(row["reward_calls"] >= 120 for row in fine_tuned)  # each run spends the budget


def test_synthetic_quick(tmp_path):
    out = tmp_path / "synthetic.json"
    printed = run_benchmark("synthetic", "--json", str(out), "--figure", str(tmp_path / "synthetic.png"))
    report = json.loads(out.read_text())
    assert (tmp_path / "synthetic.png").stat().st_size > 1000
    runs = report["runs"]
    assert {(r["task"], r["method"]) for r in runs} >= {("checkerboard", "dam"), ("pinwheel", "d1")}
    for run in runs:
        assert len(run["kl_final_jump"]) == len(run["iterations"]) > 1
        assert all(kl >= 0.0 for kl in run["kl_first_jump"] + run["kl_final_jump"])  # exact KLs are non-negative
        last = next(
            line
            for line in printed.splitlines()
            if line.split()[:3] == [run["method"], run["task"], str(run["iterations"][-1])]
        )
        assert f"{run['kl_final_jump'][-1]:.2e}" in last  # the printed table shows the JSON's figures
    dam = next(r for r in runs if (r["task"], r["method"]) == ("checkerboard", "dam"))
    assert dam["kl_final_jump"][-1] < dam["kl_final_jump"][0]  # even the reduced run learns
    for task in ("checkerboard", "pinwheel"):
        final = {r["method"]: r["kl_final_jump"][-1] for r in runs if r["task"] == task}
        first = {r["method"]: r["kl_first_jump"][-1] for r in runs if r["task"] == task}
        # The ordering of the full run (docs/assets/synthetic.json), with margins. Measured at seed 0, final KL,
        # checkerboard / pinwheel: all_jumps 0.082 / 0.0185, dam 0.117 / 0.022, l2 0.140 / 0.031,
        # analytic 0.202 / 0.041, d1 0.72 / 0.136.
        assert final["dam_all_jumps"] < 0.95 * final["dam"], (task, final)  # more jumps, same targets
        assert final["dam"] < 0.9 * final["dam_l2"], (task, final)  # l2 matches the same target, more slowly
        assert final["dam_l2"] < 0.85 * final["dam_analytic"], (task, final)  # the analytic adjoint is biased...
        assert first["dam_analytic"] > 3 * first["dam"], (task, first)  # ...already at the first jump (4x, 6x)
        assert final["dam_analytic"] < 0.5 * final["d1"], (task, final)


def test_synthetic_replot_keeps_the_legend_off_the_curves(tmp_path):
    """`--replot` redraws the figures from a JSON without training; the KL legend lies outside every panel."""
    import matplotlib

    matplotlib.use("Agg")
    spec = importlib.util.spec_from_file_location("synthetic_benchmark", ROOT / "benchmarks" / "synthetic.py")
    synthetic = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(synthetic)
    runs = [
        {"task": task, "method": method, "iterations": [10, 20, 30], "kl_first_jump": [1e-2, 1e-3, 1e-4]}
        | {"kl_final_jump": [1.0, 0.5, 0.25], "wall_time_s": 1.0}
        for task in ("checkerboard", "pinwheel")
        for method in ("dam", "d1", "svdd")
    ]
    report = tmp_path / "synthetic.json"
    report.write_text(json.dumps({"model": "tabular", "size": 7, "seed": 0, "runs": runs}))
    assert synthetic.main(["--replot", str(report), "--figure", str(tmp_path / "kl.png")]) == runs
    assert (tmp_path / "kl.png").stat().st_size > 1000
    assert not (tmp_path / "kl_densities.png").exists()  # this JSON has no densities to draw

    figure = synthetic.kl_figure(runs)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    (legend,) = figure.legends
    box = legend.get_window_extent(renderer)
    assert [text.get_text() for text in legend.get_texts()] == ["dam", "d1", "svdd", "after jump 2", "after jump 1"]
    for ax in figure.axes:
        assert not box.overlaps(ax.get_window_extent(renderer)), f"the legend covers the panel {ax.get_title()}"
        assert len(ax.lines) == 6  # 3 methods x 2 jumps

    for run in runs:
        run["final_density"] = [[1 / 49] * 7] * 7
    report.write_text(json.dumps({"model": "tabular", "size": 7, "seed": 0, "runs": runs}))
    synthetic.main(["--replot", str(report), "--figure", str(tmp_path / "kl.png")])
    assert (tmp_path / "kl_densities.png").stat().st_size > 1000
