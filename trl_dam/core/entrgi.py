r"""EntRGi: entropy-aware reward guidance for masked diffusion LMs (Tejaswi, Rout, Caramanis, Shakkottai, Sanghavi, 2026).

Test-time guidance with a *differentiable* reward model :math:`R` that reads token embeddings. Tokens are discrete,
so at every denoising step the logits :math:`\psi^l` of each masked position :math:`l` are optimised for a few steps
by gradient ascent on :math:`R` evaluated at a continuous relaxation of the tokens,

.. math:: \hat e^l = \tilde e^l + \mathrm{sg}\big(w^l\,(\bar e^l - \tilde e^l)\big), \qquad
          \tilde e^l = \sum_v q^l_v E_v,\quad \bar e^l = E_{x^l},\ x^l \sim q^l,\quad
          w^l = \frac{H(\mathrm{softmax}(\psi^l))}{\log V},

with :math:`q^l = \mathrm{softmax}(\psi^l/\tau)` and :math:`E` the reward model's input embeddings, row-aligned to
the denoiser's vocabulary. The reward model sees :math:`(1-w)\tilde e + w\bar e` (confident positions: the soft
embedding; uncertain ones: nearly the sampled hard token, which it was trained on) while the gradient always flows
through the soft embedding. ``mode="aps"`` (:math:`w \equiv 1`, straight-through) and ``mode="expectation"``
(:math:`w \equiv 0`, pure relaxation) are the two baselines the method interpolates. Then the step's tokens are drawn
from the optimised logits and committed with the base sampler's rule: here LLaDA's low-confidence block schedule
(as :func:`~trl_dam.core.sampling.sample_low_confidence`), with the positions ranked by the *unguided* logits (as the
reference code does), so guidance changes the token values, not the unmasking schedule.

Defaults follow the reference code: Adam on the logits (a fresh optimiser per denoising step) with learning rate 0.5,
3 inner steps, temperature 0.7, top-p 0.95, the entropy weight from the untempered logits. With
``num_inner_steps = 0`` (or ``learning_rate = 0``) and ``top_p = 1`` the decoder is exactly
:func:`~trl_dam.core.sampling.sample_low_confidence` (the inner hard samples come from a separate generator).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from trl_dam.core.sampling import LogitsFn, _inverse_cdf, _tokens_per_call, token_log_probs

#: ``reward_fn(inputs_embeds [batch, length, dim], attention_mask [batch, length]) -> rewards [batch]``.
EmbeddingRewardFn = Callable[[Tensor, Tensor], Tensor]

ENTRGI_MODES = ("entrgi", "aps", "expectation")
REMASKING = ("low_confidence", "entropy")


def entropy_weight(logits: Tensor, mask_token_id: int | None = None) -> Tensor:
    r"""Normalised entropy :math:`w = H(\mathrm{softmax}(\psi)) / \log V` in :math:`[0, 1]`, detached.

    The mask token is outside the support (its probability is zero) and does not count in :math:`V`.

    Args:
        logits (`FloatTensor[..., vocab]`): logits :math:`\psi`.
    Returns:
        `FloatTensor[...]`.
    """
    logp = token_log_probs(logits.detach(), mask_token_id)
    entropy = -(torch.exp(logp) * logp.clamp_min(-1e30)).nan_to_num(0.0).sum(-1)
    vocab = logits.shape[-1] - (1 if mask_token_id is not None and 0 <= mask_token_id < logits.shape[-1] else 0)
    return (entropy / math.log(max(vocab, 2))).clamp(0.0, 1.0)


def top_p_filter(scores: Tensor, top_p: float) -> Tensor:
    """Keep the smallest set of tokens whose probability reaches ``top_p`` (nucleus); the rest get ``-inf``."""
    if top_p >= 1.0:
        return scores
    sorted_scores, order = scores.sort(dim=-1, descending=True)
    cumulative = torch.softmax(sorted_scores, -1).cumsum(-1)
    # Drop a token when the tokens ranked above it already reach top_p (the top token always stays).
    drop_sorted = (cumulative - torch.softmax(sorted_scores, -1)) >= top_p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return scores.masked_fill(drop, float("-inf"))


def relaxed_embeddings(
    logits: Tensor,
    embedding_matrix: Tensor,
    *,
    mask_token_id: int | None = None,
    temperature: float = 0.7,
    top_p: float = 0.95,
    mode: str = "entrgi",
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    r"""The EntRGi input embeddings :math:`\hat e = \tilde e + \mathrm{sg}(w(\bar e - \tilde e))` of positions whose
    logits are ``logits``.

    Args:
        logits (`FloatTensor[n, vocab]`): :math:`\psi` (gradients flow to it through the soft embedding only).
        embedding_matrix (`FloatTensor[vocab, dim]`): the reward model's input embeddings, row ``v`` for the
            denoiser's token ``v``.
        temperature (`float`): :math:`\tau` of the relaxed distribution and of the hard sample.
        top_p (`float`): nucleus of the hard sample.
        mode (`str`): ``"entrgi"`` (:math:`w` from the entropy), ``"aps"`` (:math:`w=1`), ``"expectation"``
            (:math:`w=0`).
        generator: CPU generator of the hard samples.
    Returns:
        ``(embeddings [n, dim], w [n])``.
    """
    if mode not in ENTRGI_MODES:
        raise ValueError(f"mode must be one of {ENTRGI_MODES}, got {mode!r}")
    log_q = token_log_probs(logits, mask_token_id, temperature)
    soft = torch.exp(log_q) @ embedding_matrix.to(log_q.dtype)
    if mode == "entrgi":
        weight = entropy_weight(logits, mask_token_id)
    else:
        weight = torch.full(logits.shape[:-1], 1.0 if mode == "aps" else 0.0, device=logits.device)
    if mode == "expectation":
        return soft, weight
    with torch.no_grad():
        nucleus = torch.log_softmax(top_p_filter(log_q, top_p), -1)
        u = torch.rand(nucleus.shape[:-1], generator=generator, device="cpu").to(logits.device)
        hard = embedding_matrix[_inverse_cdf(nucleus, u)].to(soft.dtype)
    return soft + (weight.unsqueeze(-1) * (hard - soft)).detach(), weight


def entrgi_decode(
    logits_fn: LogitsFn,
    x: Tensor,
    mask_token_id: int,
    reward_fn: EmbeddingRewardFn,
    embedding_matrix: Tensor,
    *,
    steps: int,
    block_length: int | None = None,
    completion_start: int | None = None,
    num_inner_steps: int = 3,
    learning_rate: float = 0.5,
    temperature: float = 0.7,
    top_p: float = 0.95,
    mode: str = "entrgi",
    optimizer: str = "adam",
    remasking: str = "low_confidence",
    attention_mask: Tensor | None = None,
    eos_token_id: int | None = None,
    generator: torch.Generator | None = None,
    guidance_generator: torch.Generator | None = None,
    diagnostics: dict[str, list[float]] | None = None,
) -> Tensor:
    r"""Decode ``x`` with EntRGi reward guidance on LLaDA's low-confidence block schedule.

    Per denoiser call: one forward on the current state (no grad); :math:`\psi` = the logits of every masked
    completion position; ``num_inner_steps`` ascent steps on :math:`R(\hat e)` (the prompt and committed tokens enter
    as their hard embeddings, the masked ones as :math:`\hat e`); tokens of the current block drawn from
    :math:`\mathrm{top\text{-}p}(\mathrm{softmax}(\psi/\tau))`; the block's quota of positions committed, ranked by
    the unguided logits (``"low_confidence"``: probability of the drawn token, LLaDA; ``"entropy"``: negative
    entropy, the EntRGi reference code).

    Args:
        logits_fn: the denoiser (called without gradients).
        x (`LongTensor[batch, length]`): prompt followed by a masked completion.
        mask_token_id (`int`): the mask id.
        reward_fn: ``(inputs_embeds [batch, length, dim], attention_mask [batch, length]) -> [batch]``, differentiable
            in ``inputs_embeds``; e.g. a sequence-classification model that shares the denoiser's vocabulary:
            ``lambda e, m: model(inputs_embeds=e, attention_mask=m).logits[:, 0]``.
        embedding_matrix (`FloatTensor[vocab, dim]`): the reward model's input embeddings, aligned to the denoiser's
            vocabulary (build it by token-string matching when the tokenizers differ).
        steps (`int`): denoiser calls for the whole completion; a multiple of the number of blocks.
        block_length (`int`, *optional*): block size (divides the completion length); `None`: one block.
        completion_start (`int`, *optional*): first completion column (default: first column holding a mask).
        num_inner_steps (`int`): :math:`M`, gradient steps per denoiser call (0: no guidance).
        learning_rate (`float`): :math:`\eta`.
        temperature (`float`): :math:`\tau > 0`.
        top_p (`float`): nucleus of every sample.
        mode (`str`): ``"entrgi"``, ``"aps"`` or ``"expectation"`` (see :func:`relaxed_embeddings`).
        optimizer (`str`): ``"adam"`` (reference code, fresh per call) or ``"sgd"`` (the paper's plain step).
        remasking (`str`): ``"low_confidence"`` or ``"entropy"``.
        attention_mask (`Tensor[batch, length]`, *optional*): 0 on padding; positions after the first
            ``eos_token_id`` of the completion (arg-max token at masked positions) are masked out as well.
        generator: CPU generator of the committed tokens (the base sampler's stream).
        guidance_generator: CPU generator of the inner hard samples (a separate stream, so that guidance does not
            shift the base samples); defaults to a fresh one seeded from ``generator``.
        diagnostics (`dict`, *optional*): filled with per-call lists ``entropy_weight`` (mean :math:`w` over the
            masked positions), ``reward_before`` and ``reward_after`` (mean relaxed reward at the first and last inner
            step).
    Returns:
        `LongTensor[batch, length]`: the decoded sequences.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    if remasking not in REMASKING:
        raise ValueError(f"remasking must be one of {REMASKING}, got {remasking!r}")
    if mode not in ENTRGI_MODES:
        raise ValueError(f"mode must be one of {ENTRGI_MODES}, got {mode!r}")
    if num_inner_steps < 0:
        raise ValueError(f"num_inner_steps must be >= 0, got {num_inner_steps}")
    state = x.clone()
    batch, length = state.shape
    if completion_start is None:
        masked_cols = (state == mask_token_id).any(0).nonzero()
        completion_start = int(masked_cols[0].item()) if len(masked_cols) else length
    gen_length = length - completion_start
    block_length = block_length or gen_length
    if gen_length == 0:
        return state
    if gen_length % block_length != 0:
        raise ValueError(f"completion length {gen_length} is not a multiple of block_length {block_length}")
    num_blocks = gen_length // block_length
    if steps % num_blocks != 0:
        raise ValueError(f"steps={steps} must be a multiple of the number of blocks ({num_blocks})")
    steps_per_block = steps // num_blocks
    if guidance_generator is None:
        seed = generator.initial_seed() + 1 if generator is not None else torch.initial_seed() + 1
        guidance_generator = torch.Generator().manual_seed(seed % 2**63)
    blocks = state[:, completion_start:].reshape(batch, num_blocks, block_length)
    quota = _tokens_per_call((blocks == mask_token_id).sum(-1).reshape(-1), steps_per_block)
    quota = quota.reshape(batch, num_blocks * steps_per_block)
    base_mask = attention_mask if attention_mask is not None else torch.ones_like(state)
    embedding_matrix = embedding_matrix.detach()
    for s in range(quota.shape[1]):
        if not (quota[:, s] > 0).any():
            continue
        with torch.no_grad():
            logits = logits_fn(state).float()
        masked = state == mask_token_id
        masked[:, :completion_start] = False
        guided = logits
        if num_inner_steps > 0 and learning_rate != 0 and masked.any():
            guided = _guide(
                logits,
                state,
                masked,
                reward_fn,
                embedding_matrix,
                base_mask,
                mask_token_id=mask_token_id,
                completion_start=completion_start,
                num_inner_steps=num_inner_steps,
                learning_rate=learning_rate,
                temperature=temperature,
                top_p=top_p,
                mode=mode,
                optimizer=optimizer,
                eos_token_id=eos_token_id,
                generator=guidance_generator,
                diagnostics=diagnostics,
            )
        lo = completion_start + (s // steps_per_block) * block_length
        cols = slice(lo, lo + block_length)
        logp = token_log_probs(guided[:, cols], mask_token_id, temperature)
        if top_p < 1.0:
            logp = torch.log_softmax(top_p_filter(logp, top_p), -1)
        u = torch.rand(logp.shape[:2], generator=generator, device="cpu").to(x.device)
        drawn = _inverse_cdf(logp, u)
        unguided = token_log_probs(logits[:, cols], mask_token_id)
        if remasking == "low_confidence":
            confidence = unguided.gather(-1, drawn.unsqueeze(-1)).squeeze(-1)
        else:
            tempered = token_log_probs(logits[:, cols], mask_token_id, temperature)
            confidence = (torch.exp(tempered) * tempered.clamp_min(-1e30)).nan_to_num(0.0).sum(-1)
        confidence = confidence.masked_fill(state[:, cols] != mask_token_id, float("-inf"))
        order = confidence.argsort(dim=1, descending=True)
        for b in range(batch):
            n = int(quota[b, s])
            if n:
                chosen = order[b, :n]
                state[b, lo + chosen] = drawn[b, chosen]
    return state


def _guide(
    logits: Tensor,
    state: Tensor,
    masked: Tensor,
    reward_fn: EmbeddingRewardFn,
    embedding_matrix: Tensor,
    base_mask: Tensor,
    *,
    mask_token_id: int,
    completion_start: int,
    num_inner_steps: int,
    learning_rate: float,
    temperature: float,
    top_p: float,
    mode: str,
    optimizer: str,
    eos_token_id: int | None,
    generator: torch.Generator,
    diagnostics: dict[str, list[float]] | None,
) -> Tensor:
    """``num_inner_steps`` ascent steps on the masked positions' logits; returns the logits with them replaced."""
    rows, cols = masked.nonzero(as_tuple=True)
    psi = logits[rows, cols].detach().clone().requires_grad_(True)
    opt = (
        torch.optim.Adam([psi], lr=learning_rate) if optimizer == "adam" else torch.optim.SGD([psi], lr=learning_rate)
    )
    # Hard embeddings of everything that is not being optimised (the mask rows are replaced below).
    fixed = embedding_matrix[state.clamp(0, embedding_matrix.shape[0] - 1)]
    for inner in range(num_inner_steps):
        opt.zero_grad(set_to_none=True)
        relaxed, weight = relaxed_embeddings(
            psi,
            embedding_matrix,
            mask_token_id=mask_token_id,
            temperature=temperature,
            top_p=top_p,
            mode=mode,
            generator=generator,
        )
        # Out of place: an in-place write into a tensor of the graph would cut the gradient to psi.
        embeds = fixed.to(relaxed.dtype).index_put((rows, cols), relaxed)
        attention = _attention_after_eos(
            state, masked, psi.detach(), rows, cols, base_mask, eos_token_id, completion_start
        )
        rewards = reward_fn(embeds, attention)
        (-rewards.sum()).backward()
        opt.step()
        if diagnostics is not None:
            if inner == 0:
                diagnostics.setdefault("entropy_weight", []).append(float(weight.mean()))
                diagnostics.setdefault("reward_before", []).append(float(rewards.detach().mean()))
            if inner == num_inner_steps - 1:
                diagnostics.setdefault("reward_after", []).append(float(rewards.detach().mean()))
    guided = logits.clone()
    guided[rows, cols] = psi.detach()
    return guided


def _attention_after_eos(state, masked, psi, rows, cols, base_mask, eos_token_id, completion_start) -> Tensor:
    """``base_mask`` with the completion positions after the first end-of-sequence token zeroed (the arg-max of
    :math:`\\psi` stands in for masked positions)."""
    if eos_token_id is None:
        return base_mask
    tokens = state.clone()
    tokens[rows, cols] = psi.argmax(-1)
    is_eos = tokens == eos_token_id
    is_eos[:, :completion_start] = False
    after = (is_eos.long().cumsum(1) - is_eos.long()) > 0
    return base_mask * (~after).to(base_mask.dtype)
