"""Load a masked diffusion LM from the hub or a local folder with the right auto class."""

from __future__ import annotations

import os
from typing import Any

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.models.auto.auto_factory import _BaseAutoModelClass
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.utils import logging

from .adapters import (
    DREAM_MODEL_TYPES,
    KIND_BIDIRECTIONAL_LM,
    KIND_DREAM,
    KIND_LLADA,
    KIND_MASKED_LM,
    LLADA_MODEL_TYPES,
    detect_model_kind,
    ensure_bidirectional_padding_mask,
    is_bidirectional_config,
)

logger = logging.get_logger(__name__)

#: Keyword arguments that locate files; they are passed to the config lookup as well as to `from_pretrained`.
HUB_KWARGS = ("revision", "cache_dir", "token", "local_files_only", "force_download", "proxies", "subfolder")

#: Families whose official checkpoints need remote code and whose code we trust by default (`trust_remote_code=None`).
REMOTE_CODE_FAMILIES = LLADA_MODEL_TYPES | DREAM_MODEL_TYPES


def _needs_remote_code(config_dict: dict[str, Any]) -> bool:
    model_type = config_dict.get("model_type")
    return bool(config_dict.get("auto_map")) and (not model_type or model_type not in CONFIG_MAPPING)


def select_auto_class(config: PretrainedConfig) -> type:
    """The auto class that builds the denoiser for `config`.

    LLaDA and Dream (remote code, and the project's tiny stand-ins) register under `AutoModel`; configs that map to
    `AutoModelForMaskedLM` (BERT, ModernBERT, ... or remote code whose `auto_map` lists it) use that; causal-LM configs
    with `use_bidirectional_attention` use `AutoModelForCausalLM`. Anything else raises ValueError.
    """
    kind = detect_model_kind(config)  # raises ValueError for configs that are not masked diffusion LMs
    return {
        KIND_LLADA: AutoModel,
        KIND_DREAM: AutoModel,
        KIND_MASKED_LM: AutoModelForMaskedLM,
        KIND_BIDIRECTIONAL_LM: AutoModelForCausalLM,
    }[kind]


def adapter_config(path: str | os.PathLike, **hub_kwargs: Any):
    """The `peft.PeftConfig` of `path` (a local folder or a hub id) when it holds a PEFT adapter and no full model
    (no `config.json`), else `None`. `hub_kwargs` (`revision`, `token`, `cache_dir`, ...) locate the files."""
    from transformers.utils import cached_file

    try:
        has_model = (
            cached_file(str(path), "config.json", _raise_exceptions_for_missing_entries=False, **hub_kwargs)
            is not None
        )
    except OSError:  # no such folder or repository: the model loader reports it
        return None
    if has_model:
        return None
    from peft import PeftConfig

    try:
        return PeftConfig.from_pretrained(str(path), **hub_kwargs)
    except (OSError, ValueError):
        return None


def is_adapter_folder(path: str | os.PathLike, **hub_kwargs: Any) -> bool:
    """Whether `path` (a local folder or a hub id) holds a PEFT adapter and no full model."""
    return adapter_config(path, **hub_kwargs) is not None


def load_diffusion_lm(
    model_name_or_path: str | os.PathLike,
    *,
    torch_dtype: Any = "auto",
    trust_remote_code: bool | None = None,
    model_class: type | None = None,
    **kwargs: Any,
) -> PreTrainedModel:
    """Load a masked diffusion LM (LLaDA, Dream, `*ForMaskedLM`, bidirectional Gemma-family) from the hub or disk.

    Args:
        model_name_or_path: hub id or local folder (with `config.json`).
        torch_dtype: weight dtype ("auto" keeps the checkpoint's, or a `torch.dtype` / its name). A `dtype=` keyword,
            transformers' newer name for it, takes precedence.
        trust_remote_code: `None` enables remote code only for checkpoints that need it *and* declare a LLaDA or
            Dream `model_type` (with a warning); otherwise it is off unless you pass `True`.
        model_class: force an auto (or concrete) class instead of picking one from the config.
        **kwargs: forwarded to `from_pretrained` (e.g. `revision`, `attn_implementation`, `device_map`); hub-location
            keywords (`revision`, `cache_dir`, `token`, `local_files_only`, ...) are also used to read the config.

    A local folder or hub id holding only a PEFT adapter (`adapter_config.json`, no `config.json`, as a LoRA run's
    `save_model` writes it) loads its base (`base_model_name_or_path` of the adapter config, with the same
    arguments) and wraps it in a `PeftModel` with the adapter attached, unmerged (as d1 evaluates its checkpoints).

    Returns:
        The model (a `PeftModel` for an adapter folder), in eval mode as `from_pretrained` leaves it. Remember to `import trl_dam.models` before loading a
        checkpoint of the project's tiny models with plain transformers auto classes: importing registers them.
    """
    hub_kwargs = {key: kwargs[key] for key in HUB_KWARGS if key in kwargs}
    peft_config = adapter_config(model_name_or_path, **hub_kwargs)
    if peft_config is not None:
        # `AutoPeftModel` would pick the base class from the adapter's task type / `auto_mapping` and load it without
        # this function's class choice and remote-code policy, so the base goes through `load_diffusion_lm`; the
        # adapter's own hub location (`revision`, ...) is not the base's.
        from peft import PeftModel

        base_kwargs = {key: value for key, value in kwargs.items() if key not in ("revision", "subfolder")}
        base = load_diffusion_lm(
            peft_config.base_model_name_or_path,
            torch_dtype=torch_dtype,
            trust_remote_code=trust_remote_code,
            model_class=model_class,
            **base_kwargs,
        )
        return PeftModel.from_pretrained(base, str(model_name_or_path), config=peft_config, **hub_kwargs)
    config_dict, _ = PretrainedConfig.get_config_dict(model_name_or_path, **hub_kwargs)
    model_type = str(config_dict.get("model_type", "") or "")
    needs_remote = _needs_remote_code(config_dict)
    if trust_remote_code is None:
        trust_remote_code = needs_remote and model_type.lower() in REMOTE_CODE_FAMILIES
        if trust_remote_code:
            logger.warning(
                f"{model_name_or_path} ships its own modeling code (model_type={model_type!r}); loading it with "
                "trust_remote_code=True. Pass trust_remote_code=False to refuse."
            )
    elif needs_remote and not trust_remote_code:
        raise ValueError(
            f"{model_name_or_path} (model_type={model_type!r}) needs its own modeling code: pass trust_remote_code=True "
            "if you trust it."
        )
    config = AutoConfig.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code, **hub_kwargs)
    auto_class = model_class or select_auto_class(config)
    dtype = kwargs.pop("dtype", torch_dtype)
    if issubclass(auto_class, _BaseAutoModelClass):
        kwargs["trust_remote_code"] = trust_remote_code
    model = auto_class.from_pretrained(model_name_or_path, config=config, dtype=dtype, **kwargs)
    if is_bidirectional_config(model.config):
        ensure_bidirectional_padding_mask(model)
    return model
