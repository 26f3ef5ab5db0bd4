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
from transformers.dynamic_module_utils import get_class_from_dynamic_module
from transformers.models.auto.auto_factory import _BaseAutoModelClass, add_generation_mixin_to_remote_model
from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
from transformers.utils import logging

from .adapters import (
    KIND_BIDIRECTIONAL_LM,
    KIND_DREAM,
    KIND_LLADA,
    KIND_MASKED_LM,
    detect_model_kind,
    ensure_bidirectional_padding_mask,
    is_bidirectional_config,
)
from .remote_compat import apply_remote_code_fixes

logger = logging.get_logger(__name__)

#: Keyword arguments that locate files; they are passed to the config lookup as well as to `from_pretrained`.
HUB_KWARGS = ("revision", "cache_dir", "token", "local_files_only", "force_download", "proxies", "subfolder")


def _needs_remote_code(config_dict: dict[str, Any]) -> bool:
    # Against transformers' own model types only: remote code registers its config type with `AutoConfig` when it
    # is imported, and a later checkpoint declaring that type must not skip the question.
    model_type = config_dict.get("model_type")
    return bool(config_dict.get("auto_map")) and (not model_type or model_type not in CONFIG_MAPPING_NAMES)


#: What a user passes to allow a checkpoint's own code, in each place that loads a model.
TRUST_REMOTE_CODE_HINT = (
    "pass trust_remote_code=True (load_diffusion_lm(..., trust_remote_code=True); "
    "DAMConfig/DiffuGRPOConfig(trust_remote_code=True) or model_init_kwargs={'trust_remote_code': True}; "
    "--trust_remote_code true on the trl-dam / trl-dam-evaluate command line)"
)


def remote_code_refusal(what: str, auto_map: dict[str, Any]) -> ValueError:
    """The error raised when `what` ships its own code (`auto_map`) and `trust_remote_code` is not True."""
    code = sorted({str(ref[0] if isinstance(ref, list | tuple) else ref) for ref in auto_map.values() if ref})
    return ValueError(
        f"{what} ships its own Python code ({', '.join(code)}), which is not run unless you allow it. Read it, and "
        f"if you trust it {TRUST_REMOTE_CODE_HINT}."
    )


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
    trust_remote_code: bool | None = False,
    model_class: type | None = None,
    **kwargs: Any,
) -> PreTrainedModel:
    """Load a masked diffusion LM (LLaDA, Dream, `*ForMaskedLM`, bidirectional Gemma-family) from the hub or disk.

    Args:
        model_name_or_path: hub id or local folder (with `config.json`).
        torch_dtype: weight dtype ("auto" keeps the checkpoint's, or a `torch.dtype` / its name). A `dtype=` keyword,
            transformers' newer name for it, takes precedence.
        trust_remote_code: run the checkpoint's own modeling code (its `config.json` has an `auto_map`), as the
            official LLaDA and Dream checkpoints need. Off unless `True`, as in transformers and TRL (`None` counts as
            off): a checkpoint that needs its code raises ValueError saying what to pass.
        model_class: force an auto (or concrete) class instead of picking one from the config.
        **kwargs: forwarded to `from_pretrained` (e.g. `revision`, `attn_implementation`, `device_map`); hub-location
            keywords (`revision`, `cache_dir`, `token`, `local_files_only`, ...) are also used to read the config.

    Remote code written for transformers 4.x gets the load-time fixes of [`~trl_dam.models.remote_compat`] it needs
    (logged by name).

    A local folder or hub id holding only a PEFT adapter (`adapter_config.json`, no `config.json`, as a LoRA run's
    `save_model` writes it) loads its base (`base_model_name_or_path` of the adapter config, with the same
    arguments) and wraps it in a `PeftModel` with the adapter attached, unmerged (as d1 evaluates its checkpoints).

    Returns:
        The model (a `PeftModel` for an adapter folder), in eval mode as `from_pretrained` leaves it. Remember to `import trl_dam.models` before loading a
        checkpoint of the project's tiny models with plain transformers auto classes: importing registers them.
    """
    trust_remote_code = trust_remote_code is True
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
    remote = _needs_remote_code(config_dict)
    if remote and not trust_remote_code:
        raise remote_code_refusal(f"{model_name_or_path} (model_type={model_type!r})", config_dict["auto_map"])
    auto_map = config_dict.get("auto_map") or {}
    if remote and auto_map.get("AutoConfig"):
        config = _remote_class(auto_map, "AutoConfig", "config", model_name_or_path, hub_kwargs).from_pretrained(
            model_name_or_path, **hub_kwargs
        )
    else:
        config = AutoConfig.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code, **hub_kwargs)
    auto_class = model_class or select_auto_class(config)
    dtype = kwargs.pop("dtype", torch_dtype)
    is_auto = issubclass(auto_class, _BaseAutoModelClass)
    if remote and is_auto and auto_map.get(auto_class.__name__):
        model_class = _remote_class(auto_map, auto_class.__name__, "model", model_name_or_path, hub_kwargs)
        model = model_class.from_pretrained(model_name_or_path, config=config, dtype=dtype, **kwargs)
    else:
        if is_auto:
            kwargs["trust_remote_code"] = trust_remote_code
        else:
            apply_remote_code_fixes(auto_class, "model", str(model_name_or_path))
        model = auto_class.from_pretrained(model_name_or_path, config=config, dtype=dtype, **kwargs)
    if is_bidirectional_config(model.config):
        ensure_bidirectional_padding_mask(model)
    return model


def load_tokenizer(model_name_or_path: str | os.PathLike, *, trust_remote_code: bool | None = False, **kwargs: Any):
    """`AutoTokenizer.from_pretrained` under the same remote-code rule as [`load_diffusion_lm`].

    A tokenizer whose `tokenizer_config.json` declares its own class through `auto_map` (Dream's) is only loaded with
    `trust_remote_code=True`; otherwise this raises the ValueError of [`load_diffusion_lm`], saying what to pass.
    `kwargs` go to `AutoTokenizer.from_pretrained` (e.g. `revision`, `padding_side`).
    """
    from transformers import AutoTokenizer
    from transformers.models.auto.tokenization_auto import get_tokenizer_config

    trust_remote_code = trust_remote_code is True
    if not trust_remote_code:
        hub_kwargs = {key: kwargs[key] for key in HUB_KWARGS if key in kwargs}
        auto_map = get_tokenizer_config(model_name_or_path, **hub_kwargs).get("auto_map")
        if isinstance(auto_map, list | tuple):
            auto_map = {"AutoTokenizer": auto_map}
        if auto_map and auto_map.get("AutoTokenizer"):
            raise remote_code_refusal(
                f"The tokenizer of {model_name_or_path}", {"AutoTokenizer": auto_map["AutoTokenizer"]}
            )
    return AutoTokenizer.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code, **kwargs)


def _remote_class(auto_map: dict[str, Any], key: str, target: str, path, hub_kwargs: dict[str, Any]) -> type:
    """The class `auto_map[key]` names, imported from this checkpoint's own code, with the remote-code fixes it needs.

    The auto classes would prefer a class that earlier remote code registered under the same model type (LLaDA's and
    Dream's files register themselves on import), i.e. another checkpoint's code; this takes the checkpoint's own,
    registered for `key` so that `save_pretrained` writes the `auto_map` and copies the code as the auto class does.
    """
    reference = auto_map[key]
    if isinstance(reference, list | tuple):
        reference = reference[0]
    location = {name: value for name, value in hub_kwargs.items() if name != "subfolder"}
    cls = get_class_from_dynamic_module(reference, path, **location)
    apply_remote_code_fixes(cls, target, str(path))
    cls.register_for_auto_class(key)
    return add_generation_mixin_to_remote_model(cls) if target == "model" else cls
