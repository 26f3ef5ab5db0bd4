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


@dataclass
class SequenceConfig:
    """One run: task geometry, method, batch (``num_states`` training states x ``K`` rollouts) and optimiser."""

    length: int = 8
    vocab: int = 3
    method: str = "dam_first_jump"
    iterations: int = 400
    eval_every: int = 100
    num_generations: int = 8
    num_states: int = 16
    learning_rate: float = 1e-3
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
    generator = torch.Generator().manual_seed(config.seed + 1)
    reward_fn = functools.partial(successor_reward, vocab=config.vocab, scale=config.reward_scale)
    result = SequenceResult(config, kl_base=kl_divergence(log_target, log_base))
    wall, reward_calls = 0.0, 0

    def record(iteration: int) -> None:
        with torch.no_grad():
            kl = kl_divergence(log_target, exact_final_log_law(model, config.length, config.vocab))
        result.iterations.append(iteration)
        result.kl.append(kl)
        result.wall_time.append(wall)
        result.forwards.append(policy.rows + reference.rows)
        result.denoiser_calls.append(policy.calls + reference.calls)
        result.reward_calls.append(reward_calls)

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
        optimizer.step()
        wall += time.perf_counter() - tic
        reward_calls += calls
        if iteration % config.eval_every == 0 or iteration == config.iterations:
            record(iteration)
    return result
