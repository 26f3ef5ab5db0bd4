"""Adapters that turn any supported masked diffusion LM into one denoiser interface.

Every adapter answers one question the same way for every model family: given a partially masked sequence
`x` [B, L], what are the per-position logits [B, L, V] such that `logits[:, i]` is the model's distribution over the
token at position i? Families differ in how they must be called and in how their outputs line up:

========================  ==================================  ==================  =====================================
kind (`adapter.name`)     models                              raw logits[:, i]    call
========================  ==================================  ==================  =====================================
"llada"                   LLaDA (remote code), TinyLLaDA      token i             `model(input_ids, attention_mask)`
"dream"                   Dream (remote code), TinyDream      token i + 1         4-D mask + position ids when padded
"masked_lm"               `AutoModelForMaskedLM` (BERT, ...)  token i             2-D mask (+ position ids)
"bidirectional_lm"        Gemma-family causal-LM classes      token i             2-D mask (+ position ids), no cache
                          with `use_bidirectional_attention`
========================  ==================================  ==================  =====================================

Use [`resolve_adapter`] to pick the adapter (and mask id) for a model, then `adapter.logits(model, x, mask)` or
`logits_fn = adapter.bind(model)`; `logits_fn(x)` is the callable the samplers take.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F
from transformers.utils import logging

from .head_positions import log_full_logits_once, output_head_at

logger = logging.get_logger(__name__)


KIND_LLADA = "llada"
KIND_DREAM = "dream"
KIND_MASKED_LM = "masked_lm"
KIND_BIDIRECTIONAL_LM = "bidirectional_lm"
ADAPTER_KINDS = (KIND_LLADA, KIND_DREAM, KIND_MASKED_LM, KIND_BIDIRECTIONAL_LM)

#: `config.model_type` values (lower-cased) treated as LLaDA / Dream. The "tiny_*" ones are the project's test models.
LLADA_MODEL_TYPES = frozenset({"llada", "tiny_llada"})
DREAM_MODEL_TYPES = frozenset({"dream", "tiny_dream"})
LLADA_ARCHITECTURES = frozenset({"LLaDAModelLM", "TinyLLaDAModelLM"})
DREAM_ARCHITECTURES = frozenset({"DreamModel", "TinyDreamModel"})

#: `<|mdm_mask|>` in the GSAI-ML/LLaDA-8B-* tokenizer, which does not declare it as its `mask_token`.
LLADA_DEFAULT_MASK_TOKEN_ID = 126336


def _output_logits(output) -> torch.Tensor:
    return output.logits if hasattr(output, "logits") else output[0]


def _restricted_forward(
    model: nn.Module, kwargs: dict[str, Any], source: torch.LongTensor, length: int
) -> tuple[torch.Tensor | None, bool]:
    """`(logits, True)`: `model(**kwargs)`'s logits with the head restricted to `source` ([B, P, V]).
    `(logits, False)`: its full logits ([B, L, V]), the head could not be restricted. `(None, False)`: the forward must
    run again without the hook, because the hooked logits came out in an unexpected shape or the forward failed on them
    (e.g. a model reshaping its logits to [B, L, V])."""
    batch, head = source.shape[0], None
    try:
        with output_head_at(model, source, length) as head:
            logits = _output_logits(model(**kwargs))
    except torch.OutOfMemoryError:
        raise
    except RuntimeError as error:
        if head is None or not head.gathered:
            raise
        log_full_logits_once(model, f"the forward failed on the restricted head's output: {error}")
        return None, False
    if head.applied and tuple(logits.shape[:2]) == tuple(source.shape):
        return logits, True
    if head.untouched and tuple(logits.shape[:2]) == (batch, length):
        log_full_logits_once(model, head.reason)
        return logits, False
    log_full_logits_once(model, f"the restricted head's logits have shape {tuple(logits.shape)}")
    return None, False


def _check_positions(positions: torch.Tensor, batch: int, length: int) -> None:
    if positions.dim() != 2 or positions.shape[0] != batch or positions.dtype not in (torch.int64, torch.int32):
        raise ValueError(
            f"positions must be an integer tensor [batch={batch}, P], got {positions.dtype} {tuple(positions.shape)}."
        )
    if positions.numel() and (int(positions.min()) < 0 or int(positions.max()) >= length):
        raise ValueError(f"positions must lie in [0, {length}), got values in [{positions.min()}, {positions.max()}].")


def _padding_positions(attention_mask: torch.Tensor) -> torch.LongTensor:
    """[B, L] padding mask -> [B, L] positions counting only real tokens (left-padding invariant; pads get 0)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


@dataclass(frozen=True)
class DiffusionLMAdapter:
    """How to get aligned denoiser logits out of one family of masked diffusion LMs.

    Attributes:
        mask_token_id: id of the mask token the model was trained with.
        name: the adapter kind, one of `ADAPTER_KINDS`.
        pass_position_ids: when an attention mask is given, also pass `position_ids` counted over real tokens only,
            so left padding does not shift positions (set by [`resolve_adapter`] when the model's forward accepts them).

    The base class is the generic masked-LM adapter; subclasses override `forward_kwargs` / `align_logits`.
    """

    mask_token_id: int
    name: str = KIND_MASKED_LM
    pass_position_ids: bool = False

    def forward_kwargs(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None) -> dict[str, Any]:
        """Keyword arguments for `model(**kwargs)`. input_ids: [B, L]; attention_mask: [B, L] (1 = token) or None."""
        kwargs: dict[str, Any] = {"input_ids": input_ids}
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask
            if self.pass_position_ids:
                kwargs["position_ids"] = _padding_positions(attention_mask)
        return kwargs

    def align_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """Raw model logits [B, L, V] -> aligned logits [B, L, V] (identity unless the family predicts shifted)."""
        return logits

    def source_positions(self, positions: torch.LongTensor) -> torch.LongTensor | None:
        """Aligned positions [B, P] -> the raw-logit positions [B, P] they are read from (identity unless the family
        predicts shifted); `None` when unknown (a subclass that overrides `align_logits` but not this method), in
        which case `logits(..., positions=...)` computes the full logits and gathers."""
        if type(self).align_logits is not DiffusionLMAdapter.align_logits:
            return None
        return positions

    def logits(
        self,
        model: nn.Module,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        positions: torch.LongTensor | None = None,
    ) -> torch.Tensor:
        """Denoiser logits, at every position or at the requested ones only.

        Args:
            model: the model (possibly PEFT-, DDP- or DeepSpeed-wrapped: it is only called).
            input_ids: [B, L] token ids, masked positions holding `mask_token_id`.
            attention_mask: optional [B, L] with 1 for real tokens and 0 for padding.
            positions: optional [B, P] positions (per row) whose logits are wanted. The output projection then runs
                on those positions' hidden states only ([`~trl_dam.models.head_positions.output_head_at`]), which
                saves `(L - P) / L` of the head's FLOPs and of the logits' memory; the result equals the full logits
                gathered at `positions` (up to the matmul's summation order). Models whose head cannot be restricted
                get the full logits gathered (logged once).

        Returns:
            [B, L, V] logits (or [B, P, V] with `positions`) in the model's dtype, `logits[:, i]` being the distribution
            of the token at position i. V is the model's output size (it may exceed the tokenizer's vocabulary). Rows
            at padding are meaningless.
        """
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be [batch, length], got shape {tuple(input_ids.shape)}.")
        if attention_mask is not None and attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"attention_mask shape {tuple(attention_mask.shape)} does not match input_ids {tuple(input_ids.shape)}."
            )
        kwargs = self.forward_kwargs(input_ids, attention_mask)
        if positions is None:
            return self.align_logits(_output_logits(model(**kwargs)))
        batch, length = input_ids.shape
        _check_positions(positions, batch, length)
        source = self.source_positions(positions)
        if source is None:
            log_full_logits_once(model, f"{type(self).__name__} aligns logits without a source_positions mapping")
            logits = _output_logits(model(**kwargs))
        else:
            logits, restricted = _restricted_forward(model, kwargs, source, length)
            if restricted:
                return logits
            if logits is None:
                logits = _output_logits(model(**kwargs))
        rows = torch.arange(batch, device=positions.device).unsqueeze(1)
        return self.align_logits(logits)[rows, positions]

    def bind(self, model: nn.Module, attention_mask: torch.Tensor | None = None) -> BoundDenoiser:
        """Fix the model (and optionally a padding mask) and return a callable `x [B, L] -> logits [B, L, V]`.

        attention_mask: optional [B, L0] with L0 <= L: e.g. the prompt's left-padding mask. It is extended with ones on
        the right to the length of each `x` (positions after the prompt are never padding).
        """
        return BoundDenoiser(adapter=self, model=model, attention_mask=attention_mask)

    def bind_left_padded(
        self, model: nn.Module, pad_token_id: int, disable_adapter: bool = False
    ) -> LeftPaddedDenoiser:
        """A callable `x [B, L] -> logits [B, L, V]` that reads the left padding off each `x` ([`left_padding_mask`]).

        This is the trainers' and the evaluation's denoiser: samplers call it on row subsets, so a mask bound in
        advance would not line up. With `disable_adapter` a PEFT model runs as its reference (see
        [`reference_adapter`]): its frozen `"ref"` adapter when it has one, else with every adapter off.
        """
        return LeftPaddedDenoiser(
            adapter=self, model=model, pad_token_id=pad_token_id, disable_adapter=disable_adapter
        )


@dataclass(frozen=True)
class LLaDAAdapter(DiffusionLMAdapter):
    """LLaDA: `model(input_ids, attention_mask).logits`, aligned, no position ids (its forward takes none)."""

    name: str = KIND_LLADA

    def forward_kwargs(self, input_ids, attention_mask):
        kwargs: dict[str, Any] = {"input_ids": input_ids}
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask
        return kwargs


@dataclass(frozen=True)
class DreamAdapter(DiffusionLMAdapter):
    """Dream: logits predict the *next* position, so they are shifted right by one (the first position keeps its own
    logits, as in Dream's sampler). Padded batches get a [B, 1, L, L] boolean mask hiding padded keys and position ids
    counted over real tokens; unpadded ones get `attention_mask="full"`, Dream's own convention. With left padding the
    first real position's aligned logits come from the pad position before it (meaningless, as in Dream's sampler;
    that position is always a prompt token)."""

    name: str = KIND_DREAM
    pass_position_ids: bool = True

    def forward_kwargs(self, input_ids, attention_mask):
        if attention_mask is None or bool((attention_mask != 0).all()):
            return {"input_ids": input_ids, "attention_mask": "full"}
        length = attention_mask.shape[-1]
        keys = attention_mask.bool()[:, None, None, :].expand(-1, 1, length, length)
        return {"input_ids": input_ids, "attention_mask": keys, "position_ids": _padding_positions(attention_mask)}

    def align_logits(self, logits):
        return torch.cat([logits[:, :1], logits[:, :-1]], dim=1)

    def source_positions(self, positions):
        """Aligned position i reads the raw logits at i - 1 (position 0 its own), as `align_logits` does."""
        return (positions - 1).clamp(min=0)


@dataclass(frozen=True)
class BidirectionalLMAdapter(DiffusionLMAdapter):
    """Causal-LM classes run with bidirectional attention (Gemma family): as a masked LM, without a KV cache.

    Before each call it applies [`ensure_bidirectional_padding_mask`] (a no-op once done)."""

    name: str = KIND_BIDIRECTIONAL_LM

    def forward_kwargs(self, input_ids, attention_mask):
        return {**super().forward_kwargs(input_ids, attention_mask), "use_cache": False}

    def logits(self, model, input_ids, attention_mask=None, positions=None):
        if attention_mask is not None:
            ensure_bidirectional_padding_mask(model)
        return super().logits(model, input_ids, attention_mask, positions)


@dataclass(frozen=True, eq=False)
class BoundDenoiser:
    """`logits_fn` for samplers: `logits_fn(x)` -> [B, L, V] aligned logits, `logits_fn(x, positions=p)` -> [B, P, V]
    at the positions `p` [B, P] only (the head restricted; see [`DiffusionLMAdapter.logits`]). See
    [`DiffusionLMAdapter.bind`]."""

    #: Samplers pass `positions=` to denoisers that declare it (see `trl_dam.core.sampling.logits_at`).
    accepts_positions: ClassVar[bool] = True

    adapter: DiffusionLMAdapter
    model: nn.Module
    attention_mask: torch.Tensor | None = None

    @property
    def mask_token_id(self) -> int:
        return self.adapter.mask_token_id

    def __call__(self, x: torch.LongTensor, positions: torch.LongTensor | None = None) -> torch.Tensor:
        mask = self.attention_mask
        if mask is not None:
            if mask.dim() != 2 or mask.shape[0] != x.shape[0] or mask.shape[1] > x.shape[1]:
                raise ValueError(
                    f"Bound attention_mask of shape {tuple(mask.shape)} cannot cover x of shape {tuple(x.shape)}: "
                    "it needs the same batch size and at most as many positions."
                )
            if mask.shape[1] < x.shape[1]:
                mask = F.pad(mask, (0, x.shape[1] - mask.shape[1]), value=1)
        return self.adapter.logits(self.model, x, mask, positions)


def left_padding_mask(x: torch.LongTensor, pad_token_id: int) -> torch.LongTensor | None:
    """[B, L] mask of the left padding of `x` (the pad run before the first real token), `None` when unpadded.

    Pad tokens after the prompt (e.g. pad = eos inside a completion) stay visible; a prompt must therefore not start
    with the pad token.
    """
    real = (x != pad_token_id).cumsum(1) > 0
    return None if bool(real.all()) else real.long()


@dataclass(frozen=True, eq=False)
class LeftPaddedDenoiser:
    """`logits_fn` with the left padding of each input hidden; `positions=` as in [`BoundDenoiser`]. See
    [`DiffusionLMAdapter.bind_left_padded`]."""

    accepts_positions: ClassVar[bool] = True

    adapter: DiffusionLMAdapter
    model: nn.Module
    pad_token_id: int
    disable_adapter: bool = False

    @property
    def mask_token_id(self) -> int:
        return self.adapter.mask_token_id

    def __call__(self, x: torch.LongTensor, positions: torch.LongTensor | None = None) -> torch.Tensor:
        attention_mask = left_padding_mask(x, self.pad_token_id)
        if self.disable_adapter:
            with reference_adapter(self.model):
                return self.adapter.logits(self.model, x, attention_mask, positions)
        return self.adapter.logits(self.model, x, attention_mask, positions)


#: The frozen adapter that holds the reference policy of a PEFT model passed to a trainer (TRL's name for it).
REFERENCE_ADAPTER = "ref"


def reference_adapter(model: nn.Module):
    """Context in which a PEFT `model` computes its reference: the frozen `REFERENCE_ADAPTER` when the model has one
    (a PeftModel passed to a trainer, whose adapter was copied there), else the base with every adapter disabled."""
    from trl.trainer.utils import use_adapter

    return use_adapter(model, REFERENCE_ADAPTER if REFERENCE_ADAPTER in model.peft_config else None)


_ADAPTER_CLASSES: dict[str, type[DiffusionLMAdapter]] = {
    KIND_LLADA: LLaDAAdapter,
    KIND_DREAM: DreamAdapter,
    KIND_MASKED_LM: DiffusionLMAdapter,
    KIND_BIDIRECTIONAL_LM: BidirectionalLMAdapter,
}


def unwrap_model(model: nn.Module) -> nn.Module:
    """The underlying transformers model: DDP / DeepSpeed / FSDP / `torch.compile` wrappers stripped by accelerate's
    `extract_model_from_parallel`, then PEFT's (`get_base_model`), then any `torch.compile` inside it."""
    from accelerate.utils import extract_model_from_parallel

    model = extract_model_from_parallel(model, keep_torch_compile=False)
    if callable(getattr(model, "get_base_model", None)):  # peft.PeftModel
        model = extract_model_from_parallel(model.get_base_model(), keep_torch_compile=False)
    return model


def is_bidirectional_config(config) -> bool:
    """True if a (text) config asks a causal-LM class for full attention (`use_bidirectional_attention` True/"all")."""
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    for cfg in (config, text_config):
        if getattr(cfg, "use_bidirectional_attention", None) in (True, "all"):
            return True
    return False


_SLIDING_WARNED: set[int] = set()


def _has_sliding_layers(config) -> bool:
    layer_types = getattr(config, "layer_types", None) or ()
    return getattr(config, "sliding_window", None) is not None and (
        not layer_types or any("sliding" in str(t) for t in layer_types)
    )


def ensure_bidirectional_padding_mask(model_or_config) -> bool:
    """Make padded batches bidirectional too for causal-LM classes with `use_bidirectional_attention=True`.

    In transformers 5.x, Gemma/Gemma2/Gemma3 attention layers honour `use_bidirectional_attention` but the mask
    builder only looks at `config.is_causal`: an unpadded batch is bidirectional, a padded one silently gets a
    causal + padding mask. Setting `config.is_causal = False` routes mask creation to the bidirectional builder. This
    is only done for configs without sliding-window layers (there the bidirectional builder would drop the window);
    for those a warning is logged instead. Returns True if the config is (now) safe for padded batches.
    """
    base = unwrap_model(model_or_config) if isinstance(model_or_config, nn.Module) else model_or_config
    config = getattr(base, "config", base)
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    safe = True
    for cfg in {id(config): config, id(text_config): text_config}.values():
        if getattr(cfg, "use_bidirectional_attention", None) is not True or not getattr(cfg, "is_causal", True):
            continue
        if _has_sliding_layers(cfg):
            if id(cfg) not in _SLIDING_WARNED:
                _SLIDING_WARNED.add(id(cfg))
                logger.warning(
                    f"{type(cfg).__name__} has sliding-window layers: transformers may build a causal mask for padded "
                    "batches even with use_bidirectional_attention=True. Avoid padding or check the outputs."
                )
            safe = False
            continue
        cfg.is_causal = False
    return safe


def detect_model_kind(model_or_config) -> str:
    """Adapter kind of a model (or of a config, which has less to go on) from `model_type`, `architectures`, the
    model class and `use_bidirectional_attention`. Raises ValueError for anything that is not a masked diffusion LM."""
    is_model = isinstance(model_or_config, nn.Module)
    model = unwrap_model(model_or_config) if is_model else None
    config = model.config if model is not None else model_or_config
    model_type = str(getattr(config, "model_type", "") or "").lower()
    architectures = set(getattr(config, "architectures", None) or [])
    class_name = type(model).__name__ if model is not None else None

    if model_type in LLADA_MODEL_TYPES or class_name in LLADA_ARCHITECTURES or architectures & LLADA_ARCHITECTURES:
        return KIND_LLADA
    if model_type in DREAM_MODEL_TYPES or class_name in DREAM_ARCHITECTURES or architectures & DREAM_ARCHITECTURES:
        return KIND_DREAM
    if class_name is not None:
        if class_name.endswith("ForMaskedLM"):
            return KIND_MASKED_LM
    elif any(name.endswith("ForMaskedLM") for name in architectures) or _config_maps_to_masked_lm(config):
        return KIND_MASKED_LM
    if is_bidirectional_config(config):
        return KIND_BIDIRECTIONAL_LM
    what = class_name or "config"
    hint = ""
    if hasattr(config, "use_bidirectional_attention") or hasattr(
        config.get_text_config(), "use_bidirectional_attention"
    ):
        hint = " It is a causal LM: set `use_bidirectional_attention=True` in its config to use it as a denoiser."
    raise ValueError(
        f"Cannot use {what} (model_type={model_type!r}, architectures={sorted(architectures)}) as a masked diffusion "
        f"LM: supported are LLaDA ({sorted(LLADA_MODEL_TYPES)}), Dream ({sorted(DREAM_MODEL_TYPES)}), "
        f"`*ForMaskedLM` models and causal-LM classes with `use_bidirectional_attention=True`.{hint} "
        f"To force a kind, pass `kind=` one of {ADAPTER_KINDS}."
    )


def _config_maps_to_masked_lm(config) -> bool:
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING

    try:
        return type(config) in MODEL_FOR_MASKED_LM_MAPPING
    except Exception:  # lazy mapping lookups can fail on exotic configs
        return False


def _output_size(config) -> int | None:
    """Number of logits the model emits (LLaDA's `embedding_size` may exceed `vocab_size`)."""
    size = getattr(config, "embedding_size", None)
    if size is None:
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        size = getattr(text_config, "vocab_size", None)
    return int(size) if isinstance(size, int) else None


def resolve_mask_token_id(
    config, processing_class=None, mask_token_id: int | None = None, kind: str | None = None
) -> int:
    """The mask id, from (in order) `mask_token_id`, `config.mask_token_id`, `processing_class.mask_token_id`
    (or its `.tokenizer`'s), and LLaDA's default 126336 when `kind == "llada"`. Raises ValueError naming what was tried.
    """
    tried = []
    candidates: list[tuple[str, Any]] = [("the mask_token_id argument", mask_token_id)]
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    candidates.append(("model.config.mask_token_id", getattr(config, "mask_token_id", None)))
    if text_config is not config:
        candidates.append(("model.config text config's mask_token_id", getattr(text_config, "mask_token_id", None)))
    if processing_class is not None:
        tokenizer = getattr(processing_class, "tokenizer", None) or processing_class
        candidates.append((f"{type(tokenizer).__name__}.mask_token_id", getattr(tokenizer, "mask_token_id", None)))
    else:
        tried.append("processing_class.mask_token_id (no processing_class given)")
    if kind == KIND_LLADA:
        candidates.append(("the LLaDA default", LLADA_DEFAULT_MASK_TOKEN_ID))
    for source, value in candidates:
        if value is None:
            tried.append(source)
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{source} must be a non-negative int, got {value!r}.")
        return value
    raise ValueError(
        "Could not determine the mask token id; tried " + ", ".join(tried) + ". Pass `mask_token_id=...`, set "
        "`model.config.mask_token_id`, or give a tokenizer with a `mask_token` "
        "(e.g. `tokenizer.add_special_tokens({'mask_token': '<mask>'})` and resize the embeddings)."
    )


def _forward_accepts(model: nn.Module, name: str) -> bool:
    try:
        parameters = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters


def resolve_adapter(
    model: nn.Module,
    processing_class=None,
    mask_token_id: int | None = None,
    *,
    kind: str | None = None,
) -> DiffusionLMAdapter:
    """Pick the [`DiffusionLMAdapter`] for `model` (unwrapping PEFT / DDP / DeepSpeed / compile wrappers).

    Args:
        model: the denoiser.
        processing_class: tokenizer or processor, consulted for `mask_token_id` after the model config.
        mask_token_id: explicit mask id; overrides everything else.
        kind: force an adapter kind (one of `ADAPTER_KINDS`) instead of detecting it.

    Raises:
        ValueError: unsupported model, unknown `kind`, no mask id found, or a mask id outside the model's output size.
    """
    base = unwrap_model(model)
    config = base.config
    if kind is None:
        kind = detect_model_kind(base)
    elif kind not in ADAPTER_KINDS:
        raise ValueError(f"Unknown adapter kind {kind!r}; expected one of {ADAPTER_KINDS}.")
    mask_id = resolve_mask_token_id(config, processing_class, mask_token_id, kind)
    size = _output_size(config)
    if size is not None and mask_id >= size:
        raise ValueError(
            f"mask_token_id {mask_id} is out of range for {type(base).__name__}, which emits {size} logits per position."
        )
    cls = _ADAPTER_CLASSES[kind]
    if kind == KIND_BIDIRECTIONAL_LM:
        ensure_bidirectional_padding_mask(base)
    if kind in (KIND_MASKED_LM, KIND_BIDIRECTIONAL_LM):
        return cls(mask_token_id=mask_id, pass_position_ids=_forward_accepts(base, "position_ids"))
    return cls(mask_token_id=mask_id)


def bind_denoiser(
    model: nn.Module, processing_class=None, attention_mask: torch.Tensor | None = None, **resolve_kwargs
) -> Callable[[torch.LongTensor], torch.Tensor]:
    """Shortcut: `resolve_adapter(model, processing_class, **resolve_kwargs).bind(model, attention_mask)`."""
    return resolve_adapter(model, processing_class, **resolve_kwargs).bind(model, attention_mask)
