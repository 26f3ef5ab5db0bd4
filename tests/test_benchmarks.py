"""Smoke runs of the benchmarks' `--quick` modes: they run end to end, print their table and write the same figures
as JSON (the full runs are too long for the test suite; their figures are in docs/assets)."""

from __future__ import annotations

import importlib.util
import json
import math
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


@pytest.mark.filterwarnings("ignore")
def test_sudoku_compare_quick_dam_targets(tmp_path):
    out = tmp_path / "targets.json"
    printed = run_benchmark(
        "sudoku_compare",
        *("--dam-targets", "first_jump", "all_jumps", "--methods", "dam", "--json", str(out)),
        *("--output-dir", str(tmp_path / "run"), "--base-dir", str(tmp_path / "b")),
    )
    report = json.loads(out.read_text())
    rows = {row["name"]: row for row in report["rows"]}
    assert set(rows) == {"base, greedy", "DAM first_jump (quick)", "DAM all_jumps (quick)"}  # no GRPO, no SVDD
    assert [t["overrides"]["dam_target"] for t in report["trials"]] == ["first_jump", "all_jumps"]
    first, every = rows["DAM first_jump (quick)"], rows["DAM all_jumps (quick)"]
    for row in (first, every):
        assert 0.0 <= row["puzzle_accuracy"] <= row["cell_accuracy"] <= 1.0
        line = next(line for line in printed.splitlines() if line.startswith(row["name"]))
        assert f"{row['cell_accuracy']:.3f}" in line
    assert first["reward_calls"] == every["reward_calls"] >= 120  # the same budget, spent by both
    assert report["targets"] == {}  # no diffu-GRPO to compare with


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


def test_gpu_step_quick(tmp_path):
    """The GPU step benchmark's code path at tiny size on CPU: real timings whose parts add up to the step, and
    denoiser calls equal to what the config and the sampled paths give."""
    out = tmp_path / "step.json"
    printed = run_benchmark("gpu_step", "--json", str(out))
    report = json.loads(out.read_text())
    assert report["gradient_checkpointing"] and report["device"] == "cpu"
    recipe = report["recipe"]
    n = recipe["max_completion_length"]
    canvas_calls = recipe["diffusion_steps"]  # two tokens per call: N / 2 calls fill a masked canvas (both samplers)
    assert n // canvas_calls == 2
    by_method = {run["method"]: run for run in report["runs"]}
    assert set(by_method) == {"dam", "diffu_grpo"}
    for method, run in by_method.items():
        assert run["peak_memory_bytes"] > 0 and run["trainable_parameters"] > 0
        assert run["rollout_tokens_per_second"] > 0
        for step in run["steps"]:
            parts = [step[name] for name in ("generation_round", "rewards", "loss_forward", "loss_backward")]
            assert step["total"] > 0 and all(t > 0 for t in parts), (method, step)
            assert step["optimizer"] > 0
            named = sum(v for key, v in step.items() if key not in ("total", "other") and isinstance(v, float))
            assert 0.4 * step["total"] <= named <= step["total"] * (1 + 1e-6), (method, step)
            calls = step["denoiser_calls_by_part"]
            assert step["denoiser_calls"] == step["expected_denoiser_calls"] == sum(calls.values())
            # One fully masked canvas per generation round (k rows fit one sampler call), one loss forward.
            assert calls["generation_round"] == canvas_calls and calls["loss_forward"] == 1
            if method == "dam":
                # The K rollouts from a re-masked state: a policy and a reference call per step, <= N / 2 steps.
                assert calls["rollouts_policy"] == calls["rollouts_reference"] <= canvas_calls
                assert step["rollouts_policy"] > 0 and step["rollouts_reference"] > 0
            else:
                # diffu-GRPO (beta > 0, one iteration): one reference mean-field forward, no old log-probs.
                assert calls == {"generation_round": canvas_calls, "rollouts_reference": 1, "loss_forward": 1}
        assert run["config_denoiser_calls"]["generation_round"] == canvas_calls
        line = next(line for line in printed.splitlines() if line.startswith("denoiser calls / step"))
        assert f"{run['mean']['denoiser_calls']:.1f}" in line
    # K rollout rows fit one sampler call (sampling_batch_size = K): at most N / 2 policy and reference calls each.
    assert by_method["dam"]["config_denoiser_calls"]["rollouts_at_most"] == 2 * canvas_calls


def test_long_sequences_quick(tmp_path):
    out = tmp_path / "long.json"
    printed = run_benchmark("long_sequences", "--json", str(out), "--figure", str(tmp_path / "long.png"))
    assert (tmp_path / "long.png").stat().st_size > 1000
    runs = json.loads(out.read_text())["runs"]
    assert {(r["length"], r["method"]) for r in runs} == {
        (length, method)
        for length in (4, 8)
        for method in ("dam_first_jump", "dam_all_jumps", "dam_all_positions", "d1")
    }
    for run in runs:
        assert run["iterations"][0] == 0 and len(run["kl"]) == len(run["iterations"]) > 2
        assert all(math.isfinite(kl) and kl >= 0.0 for kl in run["kl"])  # exact KLs
        # Every run starts from the same base: its KL at iteration 0 is KL(p* || p_base), the same for all methods.
        same_length = [r["kl"][0] for r in runs if r["length"] == run["length"]]
        assert run["kl"][0] == run["kl_base"] == same_length[0] > 1e-2
        for axis in ("wall_time", "forwards", "reward_calls"):
            assert all(a < b for a, b in zip(run[axis], run[axis][1:])), axis  # costs accumulate
        assert run["reward_calls"][-1] == run["iterations"][-1] * run["num_states"] * run["num_generations"]
        line = next(
            line
            for line in printed.splitlines()
            if line.split()[:4] == [str(run["length"]), str(run["vocab"]), run["method"], str(run["iterations"][-1])]
        )
        assert f"{run['kl'][-1]:.2e}" in line  # the printed table shows the JSON's figures
        if run["method"].startswith("dam"):
            assert run["kl"][-1] < 0.7 * run["kl"][0], run  # every DAM variant learns within the quick run


def test_long_sequences_horizons_and_crossing_summary(capsys):
    """Several --iterations values give one run each (evaluated --evaluations times), the schedule reaches every run,
    and the summary prints the cost on each axis at the first evaluation at or below 1e-2 and 1e-3."""
    spec = importlib.util.spec_from_file_location(
        "long_sequences_benchmark", ROOT / "benchmarks" / "long_sequences.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = bench.parse_args(
        ["--lengths", "8", "--methods", "dam_first_jump", "d1", "--iterations", "40", "60", "--evaluations", "4"]
        + ["--lr-schedule", "cosine", "--learning-rate", "2e-3", "--lr-final", "1e-5"]
    )
    configs = bench.build_configs(args)
    assert [(c.method, c.iterations, c.eval_every) for c in configs] == [
        ("dam_first_jump", 40, 10),
        ("dam_first_jump", 60, 15),
        ("d1", 40, 10),
        ("d1", 60, 15),
    ]
    assert {(c.lr_schedule, c.learning_rate, c.lr_final) for c in configs} == {("cosine", 2e-3, 1e-5)}
    record = {"length": 8, "vocab": 3, "method": "dam_all_jumps", "num_generations": 8, "num_states": 16}
    record |= {"iterations": [0, 50, 100], "kl": [0.1, 5e-3, 8e-4], "wall_time": [0.0, 4.0, 9.5]}
    record |= {"forwards": [0, 1000, 2100], "denoiser_calls": [0, 10, 20], "reward_calls": [0, 640, 1280]}
    longer = record | {"iterations": [0, 100, 200], "method": "dam_first_jump", "kl": [0.1, 0.2, 0.3]}
    bench.print_table([record, longer])
    summary = capsys.readouterr().out.splitlines()[-2:]
    assert summary[0].split() == "8 dam_all_jumps 100 steps 8.00e-04 4.0 1000 640 | 9.5 2100 1280".split()
    assert summary[1].split() == "8 dam_first_jump 200 steps 3.00e-01 never never never | never never never".split()


def test_step_cost_quick(tmp_path):
    out = tmp_path / "step_cost.json"
    printed = run_benchmark("step_cost", "--json", str(out))
    report = json.loads(out.read_text())
    runs = {run["method"]: run for run in report["runs"]}
    assert list(runs) == [
        "DAM (first_jump, 1 tok/call)",
        "DAM (first_jump, 1 tok/call, folded)",
        "DAM (all_positions, 1 tok/call)",
        "DAM (all_positions, 2 tok/call)",
        "diffu-GRPO",
    ]
    # A folded generation round makes no sequential calls of its own (N = 16 per step unfolded).
    folded = runs["DAM (first_jump, 1 tok/call, folded)"]
    assert folded["denoiser_calls"] < runs["DAM (first_jump, 1 tok/call)"]["denoiser_calls"]
    assert folded["trained_tokens_per_gradient_row"] == 8.0
    # The first-jump form trains K = 8 one-token jumps per gradient-forward row (one row per training state).
    assert runs["DAM (first_jump, 1 tok/call)"]["trained_tokens_per_gradient_row"] == 8.0
    # All positions trains K tokens at every masked position of the state: more than the first jump's K.
    assert runs["DAM (all_positions, 1 tok/call)"]["trained_tokens_per_gradient_row"] > 8.0
    assert 0 < runs["diffu-GRPO"]["trained_tokens_per_gradient_row"] <= report["length"]
    # Two tokens per call halve DAM's sequential calls (up to the rows with an odd number of masks).
    one, two = runs["DAM (all_positions, 1 tok/call)"], runs["DAM (all_positions, 2 tok/call)"]
    assert two["denoiser_calls"] < 0.75 * one["denoiser_calls"]
    for run in runs.values():
        assert run["step_s"] > 0 and run["policy_sampling_s"] > 0
        assert f"{run['step_s']:.3f}" in next(line for line in printed.splitlines() if line.startswith(run["method"]))


def test_head_positions_quick(tmp_path):
    """The restricted head samples the same tokens and takes the [K, L, V] logits out of the rollouts' peak memory:
    the full path's peak holds at least one such tensor, the restricted one less than half of it."""
    out = tmp_path / "head_positions.json"
    printed = run_benchmark("head_positions", "--json", str(out))
    report = json.loads(out.read_text())
    runs = {run["model"]: run for run in report["runs"]}
    assert list(runs) == ["char-vocab medium", "MDLM-size vocab"]
    big = runs["MDLM-size vocab"]
    assert big["logits_mib_full"] == pytest.approx(8 * 32 * 50257 * 4 / 2**20)
    assert big["full"]["peak_mib"] >= 0.9 * big["logits_mib_full"]
    assert big["restricted"]["peak_mib"] < 0.5 * big["logits_mib_full"]
    for run in runs.values():
        assert run["same_tokens"] and run["logp_policy_difference"] < 1e-3
        assert run["full"]["seconds_per_step"] > 0 and run["restricted"]["seconds_per_step"] > 0
        line = next(line for line in printed.splitlines() if line.startswith(run["model"]))
        assert f"{run['full']['peak_mib']:.1f}" in line and f"{run['restricted']['seconds_per_step']:.4f}" in line


def test_step_cost_large_vocabulary_subset(tmp_path):
    """--vocab pads the tokenizer (and so the model's head) to a real vocabulary size; --methods picks the rows."""
    out = tmp_path / "step_cost.json"
    run_benchmark("step_cost", "--vocab", "3000", "--methods", "first_jump", "diffu-GRPO", "--json", str(out))
    report = json.loads(out.read_text())
    assert 2990 <= report["vocab"] <= 3000
    assert [run["method"] for run in report["runs"]] == ["DAM (first_jump, 1 tok/call)", "diffu-GRPO"]
    assert all(run["step_s"] > 0 and run["denoiser_rows"] > 0 for run in report["runs"])
