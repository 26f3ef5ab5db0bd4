"""Run one update method on the long-sequence task and record the exact KL against wall time, forwards and reward
calls (see :mod:`trl_dam.synthetic.sequences` for the task and :mod:`trl_dam.synthetic.sequence_updates` for the
updates)."""

from __future__ import annotations

import copy
import functools
import time
from dataclasses import asdict, dataclass, field

import torch

from trl_dam.synthetic.chain import kl_divergence
from trl_dam.synthetic.sequence_updates import DAM_TARGETS, ForwardCounter, d1_step_loss, dam_step_loss
from trl_dam.synthetic.sequences import (
    SequenceDenoiser,
    all_completions,
    exact_final_log_law,
    pretrain_on_markov,
    successor_reward,
    target_log_law,
)

SEQUENCE_METHODS = tuple(f"dam_{target}" for target in DAM_TARGETS) + ("d1",)
LR_SCHEDULES = ("constant", "cosine")


@dataclass
class SequenceConfig:
    """One run: task geometry, method, batch (``num_states`` training states x ``K`` rollouts) and optimiser.

    ``lr_schedule`` is the same for every method: ``"constant"`` keeps ``learning_rate``; ``"cosine"`` anneals the
    step of iteration ``t`` = 1..T to ``lr_final + (learning_rate - lr_final) (1 + cos(pi (t - 1) / T)) / 2``
    (:class:`torch.optim.lr_scheduler.CosineAnnealingLR` with ``T_max = T``), so the last step runs just above
    ``lr_final``.
    """

    length: int = 8
    vocab: int = 3
    method: str = "dam_first_jump"
    iterations: int = 400
    eval_every: int = 100
    num_generations: int = 8
    num_states: int = 16
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"
    lr_final: float = 0.0
    beta: float = 1.0
    reward_scale: float = 4.0
    hidden: int = 128
    pretrain_steps: int = 400
    seed: int = 0


@dataclass
class SequenceResult:
    config: SequenceConfig
    kl_base: float = 0.0
    iterations: list[int] = field(default_factory=list)
    kl: list[float] = field(default_factory=list)
    wall_time: list[float] = field(default_factory=list)
    forwards: list[int] = field(default_factory=list)
    denoiser_calls: list[int] = field(default_factory=list)
    reward_calls: list[int] = field(default_factory=list)
    #: The learning rate of the step that ended at each evaluated iteration (at iteration 0: the first step's).
    learning_rates: list[float] = field(default_factory=list)

    def as_dict(self) -> dict:
        record = asdict(self)
        # The config's scalar `iterations` gives way to the list of evaluated iterations.
        return {**record.pop("config"), **record}


@functools.lru_cache(maxsize=4)
def setup_task(length: int, vocab: int, hidden: int, pretrain_steps: int, seed: int, beta: float, reward_scale: float):
    """``(base network, log p_base, log p*, rewards of every completion)``; cached per process."""
    torch.manual_seed(seed)
    base = SequenceDenoiser(length, vocab, hidden)
    pretrain_on_markov(base, pretrain_steps, seed)
    base.requires_grad_(False).eval()
    log_base = exact_final_log_law(base, length, vocab)
    rewards = successor_reward(all_completions(length, vocab), vocab, reward_scale)
    return base, log_base, target_log_law(log_base, rewards, beta)


def run_sequence(config: SequenceConfig) -> SequenceResult:
    """Train from the base and evaluate the exact KL(p* || p_theta) every ``eval_every`` iterations (and at 0)."""
    if config.method not in SEQUENCE_METHODS:
        raise ValueError(f"method must be one of {SEQUENCE_METHODS}, got {config.method!r}")
    if config.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {config.lr_schedule!r}")
    if config.lr_schedule == "cosine" and not 0.0 <= config.lr_final <= config.learning_rate:
        raise ValueError(f"lr_final must lie in [0, learning_rate = {config.learning_rate}], got {config.lr_final}")
    base, log_base, log_target = setup_task(
        config.length,
        config.vocab,
        config.hidden,
        config.pretrain_steps,
        config.seed,
        config.beta,
        config.reward_scale,
    )
    model = copy.deepcopy(base).requires_grad_(True).train()
    policy, reference = ForwardCounter(model), ForwardCounter(base)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, config.iterations), eta_min=config.lr_final)
        if config.lr_schedule == "cosine"
        else None
    )
    generator = torch.Generator().manual_seed(config.seed + 1)
    reward_fn = functools.partial(successor_reward, vocab=config.vocab, scale=config.reward_scale)
    result = SequenceResult(config, kl_base=kl_divergence(log_target, log_base))
    wall, reward_calls, step_lr = 0.0, 0, config.learning_rate

    def record(iteration: int) -> None:
        with torch.no_grad():
            kl = kl_divergence(log_target, exact_final_log_law(model, config.length, config.vocab))
        result.iterations.append(iteration)
        result.kl.append(kl)
        result.wall_time.append(wall)
        result.forwards.append(policy.rows + reference.rows)
        result.denoiser_calls.append(policy.calls + reference.calls)
        result.reward_calls.append(reward_calls)
        result.learning_rates.append(step_lr)

    record(0)
    k, states = config.num_generations, config.num_states
    for iteration in range(1, config.iterations + 1):
        tic = time.perf_counter()
        if config.method == "d1":
            loss, calls = d1_step_loss(policy, reference, reward_fn, states, k, config.beta, generator)
        else:
            target = config.method.removeprefix("dam_")
            loss, calls = dam_step_loss(policy, reference, reward_fn, states, k, config.beta, generator, target)
        optimizer.zero_grad()
        loss.backward()
        step_lr = optimizer.param_groups[0]["lr"]
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        wall += time.perf_counter() - tic
        reward_calls += calls
        if iteration % config.eval_every == 0 or iteration == config.iterations:
            record(iteration)
    return result
