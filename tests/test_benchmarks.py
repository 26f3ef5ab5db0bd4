"""Smoke runs of the benchmarks' `--quick` modes: they run end to end, print their table and write the same figures
as JSON (the full runs are too long for the test suite; their figures are in docs/assets)."""

from __future__ import annotations

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
