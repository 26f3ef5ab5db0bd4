"""Exact-KL synthetic benchmark: enumeration identities and a shrunken training run."""

import math
from dataclasses import replace

import pytest
import torch

from trl_dam.synthetic import SyntheticConfig, base_chain, final_log_marginal, jump_kls, make_task, optimal_chain
from trl_dam.synthetic.chain import kl_divergence
from trl_dam.synthetic.runner import run_synthetic
from trl_dam.synthetic.tabular import _selection_log_probs


@pytest.mark.parametrize("task", ["checkerboard", "pinwheel"])
def test_base_chain_reproduces_base_and_optimum_is_tilted_base(task):
    p_base, reward = make_task(task, size=13)
    base = base_chain(p_base)
    torch.testing.assert_close(final_log_marginal(base).exp(), p_base)
    target = optimal_chain(base, reward, beta=0.5)
    expected = p_base * torch.exp(reward / 0.5)
    torch.testing.assert_close(final_log_marginal(target).exp(), expected / expected.sum())
    # Both chains are normalised at every state.
    torch.testing.assert_close(torch.logsumexp(target.root.flatten(), 0), torch.tensor(0.0, dtype=torch.float64))
    torch.testing.assert_close(target.half.exp().sum(-1), torch.ones(2, 13, dtype=torch.float64))


def test_jump_kls_are_zero_for_the_target_and_match_hand_computation():
    p_base, reward = make_task("pinwheel", size=9)
    base = base_chain(p_base)
    target = optimal_chain(base, reward)
    assert jump_kls(target, target) == (0.0, 0.0)
    kl_first, kl_final = jump_kls(target, base)
    p_star = final_log_marginal(target).exp()
    by_hand = float((p_star * (p_star.log() - p_base.log())).sum())
    assert kl_final == pytest.approx(by_hand, rel=1e-10)
    assert kl_first > 0 and kl_first < kl_final  # marginalising cannot increase a KL
    assert kl_divergence(torch.tensor([0.0, -math.inf]), torch.tensor([-0.1, math.log(1 - math.exp(-0.1))])) == (
        pytest.approx(0.1)
    )


def test_svdd_selection_law():
    log_q = torch.log_softmax(torch.randn(3, 5, dtype=torch.float64), -1)
    values = torch.randn(3, 5, dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    # One candidate: plain sampling.
    torch.testing.assert_close(_selection_log_probs(log_q, values, 1, 1.0, 64, generator), log_q)
    # Two candidates: P(y) = q(y) [q(y) + 2 sum_{z != y} q(z) e^v(y) / (e^v(y) + e^v(z))], computed exactly.
    q, e = log_q.exp(), values.exp()
    pair = e[:, :, None] / (e[:, :, None] + e[:, None, :])
    exact = q * 2 * (q[:, None, :] * pair).sum(-1)
    estimate = _selection_log_probs(log_q, values, 2, 1.0, 20000, generator).exp()
    torch.testing.assert_close(estimate, exact / exact.sum(-1, keepdim=True), atol=5e-3, rtol=0)


def test_shrunken_benchmark_dam_converges_and_beats_d1():
    # 9x9 Pinwheel, a few hundred steps; lr 5e-2 because the -20 circle needs its logits moved by ~20.
    common = dict(
        task="pinwheel", size=9, iterations=300, eval_every=300, num_generations=32, num_states=128, learning_rate=0.05
    )
    dam = run_synthetic(SyntheticConfig(method="dam", **common))
    d1 = run_synthetic(SyntheticConfig(method="d1", **common))
    p_base, reward = make_task("pinwheel", size=9)
    start = jump_kls(optimal_chain(base_chain(p_base), reward), base_chain(p_base))[1]
    assert start > 0.2
    assert dam.kl_final_jump[-1] < 2e-3  # measured 1.1e-3 at seed 0
    assert dam.kl_final_jump[-1] < 0.05 * d1.kl_final_jump[-1]  # D1 plateaus near 0.10


def test_neural_denoiser_path_trains_through_the_generic_sampler():
    config = SyntheticConfig(task="checkerboard", method="dam", model="neural", size=7, iterations=60, eval_every=30)
    result = run_synthetic(replace(config, num_states=32))
    # measured: 3.1e-2 after 30 iterations, 9.3e-3 after 60
    assert result.kl_final_jump[-1] < 0.5 * result.kl_final_jump[0]
    assert result.kl_final_jump[-1] < 2e-2


def test_benchmark_script_writes_table_json_and_figure(tmp_path, capsys):
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "synthetic.py"
    spec = importlib.util.spec_from_file_location("synthetic_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    argv = ["--tasks", "pinwheel", "--methods", "dam", "svdd", "--iterations", "20", "--size", "9", "--workers", "1"]
    module.main(argv + ["--json", str(tmp_path / "t.json"), "--figure", str(tmp_path / "f.png")])
    table = capsys.readouterr().out
    record = json.loads((tmp_path / "t.json").read_text())["runs"]
    assert [r["method"] for r in record] == ["dam", "svdd"]
    assert f"{record[0]['kl_final_jump'][-1]:10.2e}" in table
    assert record[0]["kl_final_jump"][-1] < record[0]["kl_final_jump"][0]  # DAM improves within 20 steps
    assert (tmp_path / "f.png").stat().st_size > 10_000
