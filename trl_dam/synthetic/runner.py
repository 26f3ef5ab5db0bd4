"""Run one method on one synthetic task and record the exact KL after each jump at evaluation points."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import torch

from trl_dam.synthetic.chain import TwoJumpChain, base_chain, final_log_marginal, jump_kls, optimal_chain
from trl_dam.synthetic.neural import GridDenoiser, d1_loss_neural, dam_loss_neural, distill_to_chain
from trl_dam.synthetic.tabular import (
    DAMSettings,
    SVDDValue,
    TabularModel,
    d1_loss_tabular,
    dam_loss_tabular,
    svdd_chain,
)
from trl_dam.synthetic.tasks import make_task

METHODS = ("dam", "dam_all_jumps", "dam_analytic", "dam_l2", "d1", "svdd")
PAPER_K = {"checkerboard": 16, "pinwheel": 64}


@dataclass
class SyntheticConfig:
    """Settings of one synthetic run. Defaults follow the paper (Adam, lr 1e-2, on-policy, beta 1)."""

    task: str = "pinwheel"
    method: str = "dam"
    model: str = "tabular"
    size: int = 91
    iterations: int = 10_000
    eval_every: int = 1_000
    num_generations: int | None = None  # K; None = the paper's K for the task
    num_states: int = 256  # training states per iteration (the paper does not state its batch)
    learning_rate: float = 1e-2
    beta: float = 1.0
    svdd_candidates: int = 16
    seed: int = 0


@dataclass
class SyntheticResult:
    task: str
    method: str
    model: str
    iterations: list[int] = field(default_factory=list)
    kl_first_jump: list[float] = field(default_factory=list)
    kl_final_jump: list[float] = field(default_factory=list)
    wall_time: float = 0.0
    final_log_density: torch.Tensor | None = None

    def as_dict(self) -> dict:
        return {
            "task": self.task,
            "method": self.method,
            "model": self.model,
            "iterations": self.iterations,
            "kl_first_jump": self.kl_first_jump,
            "kl_final_jump": self.kl_final_jump,
            "wall_time_s": self.wall_time,
        }


def _setup(config: SyntheticConfig):
    p_base, reward = make_task(config.task, config.size)
    base = base_chain(p_base)
    if config.model == "tabular":
        return base, reward, TabularModel(base), None
    if config.model == "neural":
        torch.manual_seed(config.seed)
        net = GridDenoiser(config.size)
        distill_to_chain(net, base)
        frozen = copy.deepcopy(net).requires_grad_(False)
        # The network after distillation *is* the base: p* is defined from its own chain, so the KL is exact.
        with torch.no_grad():
            base = frozen.chain()
        return base, reward, net, frozen
    raise ValueError(f"model must be 'tabular' or 'neural', got {config.model!r}")


def _model_chain(model) -> TwoJumpChain:
    with torch.no_grad():
        chain = model.chain()
    return TwoJumpChain(chain.root.detach(), chain.half.detach())


def run_synthetic(config: SyntheticConfig) -> SyntheticResult:
    """Train (or decode, for SVDD) and evaluate exact KLs every ``eval_every`` iterations."""
    if config.method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {config.method!r}")
    k = config.num_generations or PAPER_K[config.task]
    generator = torch.Generator().manual_seed(config.seed)
    base, reward, model, frozen = _setup(config)
    target = optimal_chain(base, reward, config.beta)
    result = SyntheticResult(config.task, config.method, config.model)
    start = time.perf_counter()
    svdd_value = SVDDValue(reward) if config.method == "svdd" else None
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate) if svdd_value is None else None
    settings = DAMSettings(
        num_generations=k,
        num_states=config.num_states,
        beta=config.beta,
        estimator="analytic" if config.method == "dam_analytic" else "importance_weighted",
        loss_type="l2" if config.method == "dam_l2" else "gkl",
        train_all_jumps=config.method == "dam_all_jumps",
    )
    eval_time = 0.0
    for iteration in range(1, config.iterations + 1):
        if svdd_value is not None:
            # Same rollout budget per iteration as DAM: num_states * K model rollouts.
            svdd_value.update(base, config.num_states * k, generator)
        else:
            loss = _loss(config, model, frozen, base, reward, settings, k, generator)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if iteration % config.eval_every == 0 or iteration == config.iterations:
            tic = time.perf_counter()
            if svdd_value is not None:
                chain = svdd_chain(base, svdd_value.table(), reward, config.svdd_candidates, config.beta, generator)
            else:
                chain = _model_chain(model)
            kl_first, kl_final = jump_kls(target, chain)
            result.iterations.append(iteration)
            result.kl_first_jump.append(kl_first)
            result.kl_final_jump.append(kl_final)
            result.final_log_density = final_log_marginal(chain)
            eval_time += time.perf_counter() - tic
    result.wall_time = time.perf_counter() - start - eval_time
    return result


def _loss(config, model, frozen, base, reward, settings: DAMSettings, k: int, generator) -> torch.Tensor:
    if config.method == "d1":
        if config.model == "tabular":
            return d1_loss_tabular(model, base, reward, config.num_states, k, config.beta, generator)
        return d1_loss_neural(model, frozen, reward, config.num_states, k, config.beta, generator)
    if config.model == "tabular":
        return dam_loss_tabular(model, base, reward, settings, generator)[0]
    return dam_loss_neural(
        model, frozen, reward, config.num_states, k, config.beta, generator, settings.estimator, settings.loss_type
    )[0]


def exact_densities(task: str, size: int = 91, beta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log p_base, log p*)`` on the grid, for figures."""
    p_base, reward = make_task(task, size)
    base = base_chain(p_base)
    return final_log_marginal(base), final_log_marginal(optimal_chain(base, reward, beta))
