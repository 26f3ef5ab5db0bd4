r"""Masked-diffusion samplers over a generic denoiser.

A denoiser is any callable ``logits_fn(x) -> logits`` with ``x: LongTensor[batch, length]`` and
``logits: FloatTensor[batch, length, vocab]``, where ``logits[b, i]`` scores the token at position ``i``
(masked positions are the ones equal to ``mask_token_id``). A denoiser may also compute its logits at requested
positions only: one with ``accepts_positions = True`` is called as ``logits_fn(x, positions=p)`` with
``p: LongTensor[batch, P]`` and returns ``[batch, P, vocab]`` (see :func:`logits_at`); the samplers ask for the
positions they read, so such a denoiser can skip the output projection everywhere else.

Two samplers live here:

* :func:`sample_ctmc` — the masked CTMC that the DAM mathematics assumes. Its jump chain unmasks the
  masked positions in a uniformly random order; each jump from state ``x`` picks a masked position ``i``
  with probability :math:`\pi(i|x)` (uniform) and a token with the denoiser's probability, so

  .. math:: Q^\theta(y|x) = \pi(i|x)\, p_\theta(v \mid x, i), \qquad y = x[i \leftarrow v].

  With ``tokens_per_step = k`` a step reveals a uniformly random subset of ``k`` masked positions whose
  tokens are drawn independently from the same denoiser call. Because :math:`\pi` does not depend on the
  model, every likelihood ratio between two models (policy / reference) along a sampled path is a ratio of
  token probabilities, which is what the sampler records per step.
* :func:`low_confidence_decode` — LLaDA's semi-autoregressive low-confidence remasking. It chooses positions
  deterministically by confidence, so its paths have no tractable probability under the CTMC: **use it for
  evaluation only**; importance weights computed from its log-probs are not exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

LogitsFn = Callable[[Tensor], Tensor]


def logits_at(logits_fn: LogitsFn, x: Tensor, positions: Tensor) -> Tensor:
    r"""The denoiser's logits at ``positions[b, j]`` of each row: ``logits_fn(x)[b, positions[b, j]]``, ``[B, P, V]``.

    A denoiser that declares ``accepts_positions = True`` (the model adapters' bound denoisers,
    :class:`~trl_dam.core.shared_rows.GroupedRowsDenoiser`) is asked for those positions only, so it can run its
    output projection there alone; any other callable's full logits are gathered.

    Args:
        x (`LongTensor[B, L]`): states.
        positions (`LongTensor[B, P]`): positions in ``[0, L)``, per row.
    """
    if getattr(logits_fn, "accepts_positions", False):
        return logits_fn(x, positions=positions)
    rows = torch.arange(x.shape[0], device=x.device).unsqueeze(1)
    return logits_fn(x)[rows, positions]


@dataclass
class Trajectory:
    r"""A sampled path of the masked CTMC.

    Attributes:
        initial (`LongTensor[batch, length]`): the starting state :math:`X_t` (partially masked).
        final (`LongTensor[batch, length]`): the fully unmasked state :math:`X_1`.
        positions (`LongTensor[batch, steps, tokens_per_step]`): positions revealed at each step (``-1`` pads
            steps or slots a row did not need because it had fewer masked tokens).
        tokens (`LongTensor[batch, steps, tokens_per_step]`): tokens written at ``positions`` (``-1`` pads).
        step_mask (`BoolTensor[batch, steps]`): ``True`` where the step revealed at least one token.
        logp_policy (`FloatTensor[batch, steps]`): :math:`\sum_{i \in \text{step}} \log p_\theta(v_i|x_s, i)` under
            the *sampling* distribution (temperature included); 0 on padded steps.
        logp_reference (`FloatTensor[batch, steps]` or `None`): the same sum under the reference denoiser (at
            temperature 1) when one was given.
    """

    initial: Tensor
    final: Tensor
    positions: Tensor
    tokens: Tensor
    step_mask: Tensor
    logp_policy: Tensor
    logp_reference: Tensor | None = None

    @property
    def num_steps(self) -> int:
        return self.positions.shape[1]

    def state_before_step(self, step: int) -> Tensor:
        r"""The state :math:`x_s` from which step ``step`` jumped (``step = 0`` gives :attr:`initial`)."""
        state = self.initial.clone()
        for s in range(step):
            _write(state, self.positions[:, s], self.tokens[:, s])
        return state


def _write(state: Tensor, positions: Tensor, tokens: Tensor) -> None:
    """In place: ``state[b, positions[b, j]] = tokens[b, j]`` for every slot with ``positions >= 0``."""
    valid = positions >= 0
    rows = torch.arange(state.shape[0], device=state.device).unsqueeze(1).expand_as(positions)
    state[rows[valid], positions[valid]] = tokens[valid]


def token_log_probs(logits: Tensor, mask_token_id: int | None = None, temperature: float = 1.0) -> Tensor:
    r"""Log-softmax of ``logits / temperature`` with the mask token excluded from the support.

    .. math:: \log p(v \mid x, i) = \frac{z_v}{\tau} - \log \sum_{v' \neq m} e^{z_{v'}/\tau}

    A jump of the masked chain always writes a real token, so the mask id gets probability zero. The result is
    float32 whatever the logits' dtype, so pass only the positions you need: it holds one float32 copy of ``logits``
    besides the output (see :func:`masked_scores`).

    Args:
        logits (`FloatTensor[..., vocab]`): denoiser scores.
        mask_token_id (`int`, *optional*): id removed from the support.
        temperature (`float`): softmax temperature :math:`\tau > 0`.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 for a stochastic sampler, got {temperature}")
    return torch.log_softmax(masked_scores(logits, mask_token_id, temperature), dim=-1)


def masked_scores(logits: Tensor, mask_token_id: int | None = None, temperature: float = 1.0) -> Tensor:
    r"""A fresh float32 copy :math:`z / \tau` of ``logits`` with the mask id at :math:`-\infty` (written in place).

    The copy is the only full-size allocation: temperature and mask are applied to it in place (autograd allows it:
    neither the copy nor the division saves the tensor it overwrites).
    """
    scores = logits.to(torch.float32, copy=True)
    if temperature != 1.0:
        scores.div_(temperature)
    if mask_token_id is not None and 0 <= mask_token_id < scores.shape[-1]:
        scores[..., mask_token_id] = float("-inf")
    return scores


def selected_token_log_probs(
    logits: Tensor, tokens: Tensor, mask_token_id: int | None = None, temperature: float = 1.0
) -> Tensor:
    r"""``token_log_probs(logits, mask_token_id, temperature)`` read at ``tokens`` only:
    :math:`\log p(v \mid x, i) = z_v/\tau - \operatorname{logsumexp}_{v' \neq m} z_{v'}/\tau`.

    The log-softmax over the vocabulary is never materialised: only the float32 copy of :func:`masked_scores` and
    the log-normaliser's temporary are. TRL's `selective_log_softmax` does the same gather but keeps the mask id in the
    support and normalises bfloat16 input in bfloat16 (and this package's core imports torch only).

    Args:
        logits (`FloatTensor[..., vocab]`): denoiser scores (gradients flow through them).
        tokens (`LongTensor[...]`): the token whose log-probability is read at each position.
    Returns:
        `FloatTensor[...]` (float32).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    scores = masked_scores(logits, mask_token_id, temperature)
    return scores.gather(-1, tokens.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(scores, dim=-1)


def random_unmasking_order(is_masked: Tensor, generator: torch.Generator | None = None) -> Tensor:
    r"""A uniformly random order of the masked positions of each row.

    Returns ``order: LongTensor[batch, length]`` where ``order[b, :n_b]`` lists the ``n_b`` masked positions of
    row ``b`` in the order they will be revealed and the rest is ``-1``. Revealing them ``k`` at a time gives
    a uniformly random ``k``-subset per step, as in the CTMC with ``k`` tokens per step.
    """
    keys = torch.rand(is_masked.shape, generator=generator, device="cpu").to(is_masked.device)
    keys = keys.masked_fill(~is_masked, float("inf"))
    order = torch.argsort(keys, dim=1)
    return order.masked_fill(
        torch.arange(is_masked.shape[1], device=is_masked.device) >= is_masked.sum(1, keepdim=True), -1
    )


@torch.no_grad()
def sample_ctmc(
    logits_fn: LogitsFn,
    x: Tensor,
    mask_token_id: int,
    *,
    tokens_per_step: int = 1,
    temperature: float = 1.0,
    reference_logits_fn: LogitsFn | None = None,
    generator: torch.Generator | None = None,
    max_steps: int | None = None,
    reference_rows: Tensor | None = None,
) -> Trajectory:
    r"""Run the masked CTMC jump chain from ``x`` until no mask is left (or for ``max_steps`` steps).

    Each step ``s`` reveals the next ``k = tokens_per_step`` positions of a uniformly random order, drawing
    every token independently from :math:`p_\theta(\cdot \mid x_s, i)` at temperature :math:`\tau`, and
    records

    .. math:: \ell^\theta_s = \sum_{i \in S_s} \log p_\theta(v_i \mid x_s, i), \qquad
              \ell^{\mathrm{ref}}_s = \sum_{i \in S_s} \log p_{\mathrm{ref}}(v_i \mid x_s, i),

    so that :math:`\log p^{\mathrm{ref}}(\text{path}) - \log p^\theta(\text{path}) = \sum_s (\ell^{\mathrm{ref}}_s -
    \ell^\theta_s)` (the position choice cancels). Rows may carry different numbers of masks: steps a row does
    not need are padded and flagged by ``step_mask``.

    Args:
        logits_fn: policy denoiser, ``x -> logits[batch, length, vocab]`` (asked for the revealed positions only when
            it accepts ``positions=``, see :func:`logits_at`).
        x (`LongTensor[batch, length]`): starting state; positions equal to ``mask_token_id`` get filled.
        mask_token_id (`int`): the mask id.
        tokens_per_step (`int`): tokens revealed per denoiser call (1 = the exact CTMC jump chain).
        temperature (`float`): sampling temperature of the policy (1.0 keeps importance weights exact).
        reference_logits_fn: optional reference/base denoiser evaluated on the same states.
        generator: torch random generator (CPU) for reproducibility.
        max_steps (`int`, *optional*): stop after this many steps; ``final`` then still holds masks.
        reference_rows (`BoolTensor[batch]`, *optional*): the rows the reference is called on (all when ``None``);
            the others record :math:`\ell^{\mathrm{ref}}_s = 0`. Rows sampled without a reference share the
            policy calls of the others (DAM's folded generation round).
    """
    if tokens_per_step < 1:
        raise ValueError(f"tokens_per_step must be >= 1, got {tokens_per_step}")
    state = x.clone()
    batch, length = state.shape
    _check_reference_rows(reference_rows, batch)
    is_masked = state == mask_token_id
    order = random_unmasking_order(is_masked, generator)
    max_masked = int(is_masked.sum(1).max().item()) if batch else 0
    num_steps = -(-max_masked // tokens_per_step)
    if max_steps is not None:
        num_steps = min(num_steps, max_steps)
    needed = num_steps * tokens_per_step
    if needed > length:
        order = torch.cat([order, order.new_full((batch, needed - length), -1)], dim=1)
    positions = order[:, :needed].reshape(batch, num_steps, tokens_per_step)
    tokens = torch.full_like(positions, -1)
    logp_policy = torch.zeros(batch, num_steps, device=x.device)
    logp_reference = torch.zeros(batch, num_steps, device=x.device) if reference_logits_fn is not None else None
    rows = torch.arange(batch, device=x.device).unsqueeze(1).expand(batch, tokens_per_step)
    for s in range(num_steps):
        pos = positions[:, s]
        valid = pos >= 0
        active = valid.any(1)
        if not active.any():
            continue
        safe_pos = pos.clamp(min=0)
        # Only the active rows need a denoiser call; slicing keeps padded rows out of the batch.
        idx = active.nonzero(as_tuple=True)[0]
        # Only the k revealed positions are read: a denoiser that can computes its output projection there alone
        # (logits_at); the full [batch, length, vocab] logits are the largest tensor of a LLaDA-sized step.
        logp_at = token_log_probs(logits_at(logits_fn, state[idx], safe_pos[idx]), mask_token_id, temperature)
        u = torch.rand(logp_at.shape[:2], generator=generator, device="cpu").to(x.device)
        drawn = _inverse_cdf(logp_at, u)
        chosen = torch.where(valid[idx], drawn, torch.full_like(drawn, -1))
        tokens[idx, s] = chosen
        picked = logp_at.gather(-1, drawn.unsqueeze(-1)).squeeze(-1)
        logp_policy[idx, s] = (picked * valid[idx]).sum(1)
        keep = slice(None) if reference_rows is None else reference_rows[idx]
        ref = idx[keep]
        if reference_logits_fn is not None and len(ref):
            ref_at = token_log_probs(logits_at(reference_logits_fn, state[ref], safe_pos[ref]), mask_token_id)
            ref_picked = ref_at.gather(-1, drawn[keep].unsqueeze(-1)).squeeze(-1)
            logp_reference[ref, s] = (ref_picked * valid[ref]).sum(1)
        state[rows[valid], pos[valid]] = tokens[:, s][valid]
    step_mask = (positions >= 0).any(-1)
    return Trajectory(x.clone(), state, positions, tokens, step_mask, logp_policy, logp_reference)


def _check_reference_rows(reference_rows: Tensor | None, batch: int) -> None:
    if reference_rows is not None and (reference_rows.dtype != torch.bool or tuple(reference_rows.shape) != (batch,)):
        raise ValueError(
            f"reference_rows must be a BoolTensor[{batch}] (one flag per row of x), got {reference_rows.dtype} of "
            f"shape {tuple(reference_rows.shape)}"
        )


def _inverse_cdf(log_probs: Tensor, uniforms: Tensor) -> Tensor:
    """Draw one category per row of ``log_probs[..., V]`` from ``uniforms[...]`` (reproducible on any device)."""
    cdf = torch.cumsum(log_probs.exp(), dim=-1)
    cdf = cdf / cdf[..., -1:]
    # right=True: the first category whose CDF exceeds u, so a zero-mass category is never drawn, even a leading
    # one (e.g. the mask token when mask_token_id == 0) for u == 0.0, which torch.rand can return.
    drawn = torch.searchsorted(cdf, uniforms.unsqueeze(-1).to(cdf.dtype), right=True).squeeze(-1)
    # Guard: only rounding could push past the last category with positive mass; clamp to it.
    last_positive = (log_probs > float("-inf")).long().cumsum(-1).argmax(-1)
    return torch.minimum(drawn, last_positive)


def jump_log_probs(logits_fn: LogitsFn, x: Tensor, positions: Tensor, tokens: Tensor, mask_token_id: int) -> Tensor:
    r"""Differentiable log-probability of one (multi-token) jump under a denoiser.

    .. math:: \log Q^\theta(y \mid x) - \log \pi = \sum_{j} \log p_\theta(v_j \mid x, i_j)

    Args:
        logits_fn: denoiser (gradients flow through it).
        x (`LongTensor[batch, length]`): states before the jump.
        positions (`LongTensor[batch, k]`): revealed positions (``-1`` pads).
        tokens (`LongTensor[batch, k]`): tokens written there.
    Returns:
        `FloatTensor[batch]`.
    """
    return gather_jump_log_probs(logits_fn(x), positions, tokens, mask_token_id)


def gather_jump_log_probs(logits: Tensor, positions: Tensor, tokens: Tensor, mask_token_id: int) -> Tensor:
    r"""Jump log-probabilities :math:`\sum_j \log p(v_j \mid x, i_j)` read from denoiser logits already computed.

    Several jumps from the same state share one denoiser call: DAM scores the K first jumps of the rollouts from
    one training state with a single forward (``positions`` of shape ``[batch, K, k]``). Only the gathered
    positions go through the log-softmax.

    Args:
        logits (`FloatTensor[batch, length, vocab]`): denoiser logits of the states (gradients flow through them).
        positions (`LongTensor[batch, ..., k]`): revealed positions (``-1`` pads).
        tokens (`LongTensor[batch, ..., k]`): tokens written there.
    Returns:
        `FloatTensor[batch, ...]`.
    """
    valid = positions >= 0
    rows = torch.arange(logits.shape[0], device=logits.device).view(-1, *([1] * (positions.dim() - 1)))
    picked = selected_token_log_probs(logits[rows, positions.clamp(min=0)], tokens.clamp(min=0), mask_token_id)
    # Padded slots read token 0, which is the mask (log-prob -inf) when mask_token_id == 0: -inf * 0 would be NaN, so
    # they are replaced, not multiplied away.
    return torch.where(valid, picked, torch.zeros_like(picked)).sum(-1)


REMASKING = ("low_confidence", "random")


@torch.no_grad()
def low_confidence_decode(
    logits_fn: LogitsFn,
    x: Tensor,
    mask_token_id: int,
    *,
    steps: int,
    block_length: int,
    completion_start: int | None = None,
    temperature: float = 0.0,
    remasking: str = "low_confidence",
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""LLaDA-style semi-autoregressive decoding with low-confidence remasking (**evaluation only**).

    The schedule of :func:`sample_low_confidence` (which runs it): the completion region ``x[:, completion_start:]``
    is cut into blocks of ``block_length`` positions, decoded left to right; each block gets ``steps / num_blocks``
    denoiser calls and each call commits the masked positions of the current block with the highest confidence
    :math:`p(v|x, i)` of their candidate token (``remasking="low_confidence"``) or uniformly random ones
    (``"random"``), spreading the block's masks evenly over its calls. ``temperature = 0`` takes the argmax token;
    otherwise tokens are drawn from :math:`\mathrm{softmax}(z/\tau)`.

    The position choice is a deterministic function of the model's confidences, so paths from this decoder have
    no probability under the CTMC; do not compute importance weights from it.

    Args:
        x (`LongTensor[batch, length]`): prompt followed by a masked completion.
        steps (`int`): total denoiser calls; must be a multiple of the number of blocks.
        block_length (`int`): block size; must divide the completion length.
        completion_start (`int`, *optional*): first completion column; defaults to the first column that holds
            a mask in any row.
    Returns:
        `LongTensor[batch, length]`: the decoded sequences.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 decodes greedily), got {temperature}")
    return _low_confidence_path(
        logits_fn, x, mask_token_id, steps, block_length, completion_start, temperature, remasking, None, generator
    ).final


def _tokens_per_call(num_masked: Tensor, calls: int) -> Tensor:
    """Split each row's ``num_masked`` tokens as evenly as possible over ``calls`` calls (remainder first)."""
    base = num_masked.unsqueeze(1) // calls
    remainder = num_masked.unsqueeze(1) % calls
    return base + (torch.arange(calls, device=num_masked.device) < remainder).long()


@torch.no_grad()
def sample_low_confidence(
    logits_fn: LogitsFn,
    x: Tensor,
    mask_token_id: int,
    *,
    steps: int,
    block_length: int,
    completion_start: int | None = None,
    temperature: float = 1.0,
    reference_logits_fn: LogitsFn | None = None,
    generator: torch.Generator | None = None,
    reference_rows: Tensor | None = None,
) -> Trajectory:
    r"""LLaDA low-confidence block decoding that records its path as a :class:`Trajectory`.

    Blocks left to right, ``steps / num_blocks`` calls per block, each call committing the most confident masked
    positions of the current block, with tokens drawn from :math:`\mathrm{softmax}(z/\tau)`, :math:`\tau > 0`
    (:func:`low_confidence_decode` is the same schedule, also greedy). Each step records the same sums as
    :func:`sample_ctmc`,

    .. math:: \ell^\theta_s = \sum_{i \in S_s} \log p_\theta(v_i \mid x_s, i), \qquad
              \ell^{\mathrm{ref}}_s = \sum_{i \in S_s} \log p_{\mathrm{ref}}(v_i \mid x_s, i),

    so DAM can run on it, **but the importance weights are then not exact**: the positions :math:`S_s` are chosen by
    the sampling model's confidence, so the position factor does not cancel between policy and reference as it does
    for the CTMC. Use it to reproduce d1-style training rollouts, knowing it is a biased approximation.

    Args:
        x (`LongTensor[batch, length]`): start states (masks anywhere in the completion region are filled).
        steps (`int`): denoiser calls for a fully masked completion; a multiple of the number of blocks.
        block_length (`int`): block size; must divide the completion length.
        completion_start (`int`, *optional*): first completion column (default: first column holding a mask).
        temperature (`float`): sampling temperature, > 0 (recorded log-probs are at this temperature).
        reference_rows (`BoolTensor[batch]`, *optional*): as in :func:`sample_ctmc`.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 to record a stochastic path, got {temperature}")
    return _low_confidence_path(
        logits_fn,
        x,
        mask_token_id,
        steps,
        block_length,
        completion_start,
        temperature,
        "low_confidence",
        reference_logits_fn,
        generator,
        reference_rows,
    )


def _low_confidence_path(
    logits_fn: LogitsFn,
    x: Tensor,
    mask_token_id: int,
    steps: int,
    block_length: int,
    completion_start: int | None,
    temperature: float,
    remasking: str,
    reference_logits_fn: LogitsFn | None,
    generator: torch.Generator | None,
    reference_rows: Tensor | None = None,
) -> Trajectory:
    r"""The one implementation of the low-confidence block schedule (see :func:`sample_low_confidence`).

    At step :math:`s` in block :math:`[lo, hi)` the candidate token of each position is the argmax
    (:math:`\tau = 0`) or a draw from :math:`\mathrm{softmax}(z/\tau)`; its confidence is the untempered
    :math:`\log p(v \mid x_s, i)` (or a uniform number for ``"random"``), and the ``quota[b, s]`` most confident masked
    positions of the block are committed. Only the block's columns of the logits are asked for (:func:`logits_at`) and
    converted to float32: the largest tensor this function builds is ``[batch, block_length, vocab]`` (the denoiser's
    full logits too, unless it accepts ``positions=``). At :math:`\tau = 0` the recorded
    log-probs are at temperature 1.
    """
    if remasking not in REMASKING:
        raise ValueError(f"remasking must be one of {REMASKING}, got {remasking!r}")
    state = x.clone()
    batch = state.shape[0]
    _check_reference_rows(reference_rows, batch)
    if completion_start is None:
        masked_cols = (state == mask_token_id).any(0).nonzero()
        completion_start = int(masked_cols[0].item()) if len(masked_cols) else state.shape[1]
    gen_length = state.shape[1] - completion_start
    if gen_length % block_length != 0:
        raise ValueError(f"completion length {gen_length} is not a multiple of block_length {block_length}")
    num_blocks = gen_length // block_length
    if num_blocks and steps % num_blocks != 0:
        raise ValueError(f"steps={steps} must be a multiple of the number of blocks ({num_blocks})")
    steps_per_block = steps // max(num_blocks, 1)
    # The masks of each block are known up front (decoding only touches the current block), so all quotas are too.
    blocks = state[:, completion_start:].reshape(batch, num_blocks, block_length)
    quota = _tokens_per_call((blocks == mask_token_id).sum(-1).reshape(-1), steps_per_block)
    quota = quota.reshape(batch, num_blocks * steps_per_block)
    width = max(int(quota.max().item()), 1) if quota.numel() else 1
    positions = torch.full((batch, quota.shape[1], width), -1, dtype=torch.long, device=x.device)
    tokens = torch.full_like(positions, -1)
    logp_policy = torch.zeros(batch, quota.shape[1], device=x.device)
    logp_reference = torch.zeros_like(logp_policy) if reference_logits_fn is not None else None
    slot = torch.arange(width, device=x.device)
    block_cols = torch.arange(block_length, device=x.device).expand(batch, block_length)
    for s in range(quota.shape[1]):
        if not (quota[:, s] > 0).any():
            continue
        lo = completion_start + (s // steps_per_block) * block_length
        cols = slice(lo, lo + block_length)
        logits = logits_at(logits_fn, state, block_cols + lo)
        if temperature > 0:
            logp = token_log_probs(logits, mask_token_id, temperature)
            u = torch.rand(logp.shape[:2], generator=generator, device="cpu").to(x.device)
            drawn = _inverse_cdf(logp, u)
            picked = logp.gather(-1, drawn.unsqueeze(-1)).squeeze(-1)
            del logp
            # LLaDA ranks positions by the untempered probability of the candidate token.
            untempered = picked if temperature == 1.0 else selected_token_log_probs(logits, drawn, mask_token_id)
        else:
            scores = masked_scores(logits, mask_token_id)
            drawn = scores.argmax(-1)
            untempered = scores.gather(-1, drawn.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(scores, dim=-1)
            picked = untempered
            del scores
        del logits
        if remasking == "low_confidence":
            confidence = untempered
        else:
            confidence = torch.rand(drawn.shape, generator=generator, device="cpu").to(x.device)
        confidence = confidence.masked_fill(state[:, cols] != mask_token_id, float("-inf"))
        order = confidence.argsort(dim=1, descending=True)[:, :width]
        valid = slot < quota[:, s].unsqueeze(1)
        positions[:, s] = torch.where(valid, order + lo, -1)
        tokens[:, s] = torch.where(valid, drawn.gather(1, order), -1)
        logp_policy[:, s] = (picked.gather(1, order) * valid).sum(1)
        ref = slice(None) if reference_rows is None else reference_rows
        if reference_logits_fn is not None and (reference_rows is None or bool(reference_rows.any())):
            ref_picked = selected_token_log_probs(
                logits_at(reference_logits_fn, state[ref], (block_cols + lo)[ref]), drawn[ref], mask_token_id
            )
            logp_reference[ref, s] = (ref_picked.gather(1, order[ref]) * valid[ref]).sum(1)
        _write(state, positions[:, s], tokens[:, s])
    step_mask = (positions >= 0).any(-1)
    return Trajectory(x.clone(), state, positions, tokens, step_mask, logp_policy, logp_reference)
