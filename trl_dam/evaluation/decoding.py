r"""Decoding a masked diffusion LM for evaluation: prompts to completion texts, with d1's protocol or exact samples.

Two decoders (both from :mod:`trl_dam.core.sampling`):

* ``"low_confidence"``: LLaDA's semi-autoregressive low-confidence remasking at temperature 0, d1's evaluation
  protocol (``budget / 2`` denoiser calls, i.e. two tokens per call, in blocks of 32 tokens);
* ``"ctmc"``: one sample of the exact masked CTMC (random unmasking order, temperature 1), the model's own
  distribution, which is what DAM's objective is about.

Prompts are tokenised as the trainers tokenise them (chat template with the generation prompt for conversational
prompts), optionally followed by a prefill (d1's evaluation appends ``"<reasoning>"``); completions are cut after
their first end-of-sequence token, as the trainers cut them before scoring.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from trl_dam.core import low_confidence_decode, sample_ctmc
from trl_dam.models import completion_texts, eos_token_ids, resolve_adapter

__all__ = [
    "DECODERS",
    "MAX_DECODE_BATCH_SIZE",
    "base_for_generation",
    "completion_texts",
    "decode_batch_size",
    "decode_completions",
    "eos_token_ids",
    "policy_for_generation",
    "prompt_canvas",
    "tokenize_prompts",
]

DECODERS = ("low_confidence", "ctmc")

#: Upper bound of :func:`decode_batch_size` (the fixed default before it was derived from the model).
MAX_DECODE_BATCH_SIZE = 256

# ---------------------------------------------------------------------------------------------- tokenisation


def tokenize_prompts(
    tokenizer, prompts: Sequence[Any], chat_template_kwargs: dict | None = None, prefill: str = ""
) -> list[list[int]]:
    """Prompt ids as the trainers build them (chat template with the generation prompt for conversational prompts),
    followed by ``prefill``: text the completion is forced to start with (d1's evaluation uses ``"<reasoning>"``)."""
    conversational = isinstance(prompts[0], list)
    if not prefill:
        if conversational:
            out = tokenizer.apply_chat_template(
                list(prompts),
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
                **(chat_template_kwargs or {}),
            )
            return [list(ids) for ids in out["input_ids"]]
        return [list(ids) for ids in tokenizer(list(prompts))["input_ids"]]
    if conversational:
        # The rendered template already holds its special tokens; tokenising it must not add a second BOS.
        texts = tokenizer.apply_chat_template(
            list(prompts), add_generation_prompt=True, tokenize=False, **(chat_template_kwargs or {})
        )
        return [list(ids) for ids in tokenizer([t + prefill for t in texts], add_special_tokens=False)["input_ids"]]
    return [list(ids) for ids in tokenizer([p + prefill for p in prompts])["input_ids"]]


def prompt_canvas(prompt_ids: Sequence[Sequence[int]], budget: int, pad_id: int, mask_id: int) -> Tensor:
    """``LongTensor[n, P + budget]``: prompts left-padded to a common width, then ``budget`` mask tokens."""
    width = max(len(ids) for ids in prompt_ids)
    x = torch.full((len(prompt_ids), width + budget), pad_id, dtype=torch.long)
    x[:, width:] = mask_id
    for row, ids in enumerate(prompt_ids):
        x[row, width - len(ids) : width] = torch.tensor(ids, dtype=torch.long)
    return x


# ---------------------------------------------------------------------------------------------- decoding


def decode_batch_size(
    model,
    length: int,
    block_length: int | None = None,
    memory_bytes: int | None = None,
    fraction: float = 0.5,
) -> int:
    r"""Sequences per decoder call that fit the device, from the model's size and the canvas length.

    One denoiser call of a batch of :math:`B` sequences of length :math:`L` holds, per sequence (:math:`b` bytes per
    parameter, vocabulary :math:`V`, hidden size :math:`H`, MLP size :math:`M`, :math:`h` heads, block :math:`k`):

    .. math:: m = \underbrace{L V b}_{\text{logits}} + \underbrace{2 \cdot 4 k V}_{\text{float32 block scores}}
              + \underbrace{L (4H + 3M) b}_{\text{one layer's activations}}
              + \underbrace{h L^2 b}_{\text{attention scores}}

    and the batch is :math:`B = \lfloor f\,(\text{memory} - P b) / m \rfloor`, clipped to
    ``[1, MAX_DECODE_BATCH_SIZE]``, with :math:`P` parameters and :math:`f` = ``fraction`` of what the weights leave
    (the rest is headroom: allocator fragmentation, the CUDA context, a second model). LLaDA-8B in bfloat16 on an
    80 GB GPU with a 200-token prompt, 256 completion tokens and blocks of 32: :math:`m \approx` 210 MB, so 166
    sequences (the former fixed 256 needed about 59 GB for one float32 copy of the logits alone).

    Args:
        model: the denoiser (its parameters and config are read; meta tensors are fine).
        length: canvas length (prompt + completion).
        block_length: float32 block width (default: ``length``).
        memory_bytes: the device's memory; default: the CUDA device's total memory, or the available RAM on CPU.
        fraction: share of the memory left by the weights that the decoding may use.
    """
    from trl_dam.models import unwrap_model
    from trl_dam.models.adapters import _output_size

    base = unwrap_model(model)
    config = base.config.get_text_config() if hasattr(base.config, "get_text_config") else base.config
    first = next(base.parameters())
    bytes_per = first.element_size()
    parameters = sum(p.numel() for p in base.parameters())
    vocab = _output_size(config) or base.get_output_embeddings().out_features
    hidden = getattr(config, "hidden_size", None) or config.d_model
    mlp = getattr(config, "intermediate_size", None) or getattr(config, "mlp_hidden_size", None) or 4 * hidden
    heads = getattr(config, "num_attention_heads", None) or config.n_heads
    block = block_length or length
    per_sequence = length * vocab * bytes_per + 8 * block * vocab + length * (4 * hidden + 3 * mlp) * bytes_per
    per_sequence += heads * length * length * bytes_per
    if memory_bytes is None:
        if first.device.type == "cuda":
            memory_bytes = torch.cuda.get_device_properties(first.device).total_memory
        else:
            import psutil

            memory_bytes = psutil.virtual_memory().available
    free = fraction * (memory_bytes - parameters * bytes_per)
    return int(max(1, min(MAX_DECODE_BATCH_SIZE, free // per_sequence)))


@torch.no_grad()
def decode_completions(
    model,
    tokenizer,
    prompts: Sequence[Any],
    budget: int,
    *,
    decoder: str = "low_confidence",
    block_length: int | None = None,
    steps: int | None = None,
    num_samples: int = 1,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
    disable_adapter: bool = False,
    chat_template_kwargs: dict | None = None,
    prefill: str = "",
    tokens_per_step: int = 1,
    accelerator=None,
) -> list[str]:
    """Complete every prompt with a ``budget``-token canvas and return the completion texts.

    Args:
        model: the denoiser (any model :func:`~trl_dam.models.resolve_adapter` supports); put in eval mode for the
            call and restored afterwards.
        tokenizer: its tokenizer (``pad``, ``eos`` and ``mask`` ids).
        prompts: plain-text or conversational prompts.
        budget: completion length in tokens.
        decoder: ``"low_confidence"`` (d1's greedy protocol) or ``"ctmc"`` (one exact model sample per prompt).
        block_length: block size of ``"low_confidence"`` (default: the whole canvas); clipped to ``budget``.
        steps: denoiser calls of ``"low_confidence"`` (default ``budget // 2``, d1's two tokens per call).
        num_samples: completions per prompt (``"ctmc"``), returned prompt-major (``n * num_samples`` texts).
        batch_size: sequences per decoder call; default: :func:`decode_batch_size` for this model and canvas.
        generator: CPU generator of the CTMC sampler.
        disable_adapter: decode with the PEFT adapters disabled (the base model of a LoRA run).
        chat_template_kwargs: for conversational prompts.
        prefill: text appended to every tokenised prompt (see :func:`tokenize_prompts`); not in the returned texts.
        tokens_per_step: tokens the ``"ctmc"`` sampler reveals per call (1: the exact jump chain).
        accelerator: with several processes, each decodes a contiguous shard of the prompts and the texts are
            gathered (in order) on every process.
    """
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}.")
    adapter = resolve_adapter(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    prompt_ids = tokenize_prompts(tokenizer, prompts, chat_template_kwargs, prefill)
    prompt_ids = [ids for ids in prompt_ids for _ in range(num_samples)]
    sharded = accelerator is not None and accelerator.num_processes > 1
    if sharded:
        with accelerator.split_between_processes(prompt_ids) as shard:
            prompt_ids = list(shard)
    device = next(model.parameters()).device
    logits_fn = adapter.bind_left_padded(model, pad_id, disable_adapter)
    block = min(block_length or budget, budget)
    calls = steps or max(1, budget // 2)
    if batch_size is None:
        width = max((len(ids) for ids in prompt_ids), default=0) + budget
        batch_size = decode_batch_size(model, width, block if decoder == "low_confidence" else tokens_per_step)
    eos_ids = eos_token_ids(tokenizer, model)
    was_training = model.training
    model.eval()
    texts: list[str] = []
    try:
        for i in range(0, len(prompt_ids), batch_size):
            x = prompt_canvas(prompt_ids[i : i + batch_size], budget, pad_id, adapter.mask_token_id).to(device)
            if decoder == "low_confidence":
                final = low_confidence_decode(
                    logits_fn, x, adapter.mask_token_id, steps=calls, block_length=block, temperature=0.0
                )
            else:
                final = sample_ctmc(
                    logits_fn, x, adapter.mask_token_id, tokens_per_step=tokens_per_step, generator=generator
                ).final
            texts += completion_texts(tokenizer, final[:, -budget:], eos_ids)
    finally:
        model.train(was_training)
    if sharded:
        from accelerate.utils import gather_object

        texts = gather_object(texts)
    return texts


# ---------------------------------------------------------------------------------------------- trainer models


@contextmanager
def policy_for_generation(trainer) -> Iterator[tuple[Any, bool]]:
    """``(model, disable_adapter)`` for decoding with a trainer's current policy (DeepSpeed/DDP unwrapped, ZeRO-3
    weights gathered)."""
    from trl.models import unwrap_model_for_generation

    with unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator) as model:
        yield model, False


@contextmanager
def base_for_generation(trainer) -> Iterator[tuple[Any, bool]]:
    """``(model, disable_adapter)`` for decoding with a trainer's base (reference) model: under PEFT the policy
    network with its frozen ``"ref"`` adapter (a PeftModel passed to the trainer) or with its adapters disabled, else
    the trainer's frozen reference copy."""
    from accelerate.utils import is_peft_model
    from trl.models import unwrap_model_for_generation

    if trainer.ref_model is None:
        with unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator) as model:
            if not is_peft_model(model):
                raise ValueError("The trainer has neither a reference model nor PEFT adapters to disable.")
            yield model, True  # `disable_adapter` runs a PEFT model as its reference (`reference_adapter`)
        return
    with unwrap_model_for_generation(trainer.ref_model, trainer.accelerator) as model:
        yield model, False
