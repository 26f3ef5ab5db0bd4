"""Model, tokenizer and reference setup of the masked-diffusion RL trainers (a mixin of `DiffusionRLTrainer`).

* the policy: a hub id / path through [`~trl_dam.models.load_diffusion_lm`] (with `model_init_kwargs`, the
  remote-code decision and k-bit quantization), or a loaded model; PEFT wrapping; activation checkpointing;
* the tokenizer, the pad and end-of-sequence ids;
* the reference: with PEFT the same network, with its adapters disabled (adapters added from `peft_config`) or
  with a frozen copy of the adapter of a PeftModel passed in (TRL's `"ref"` adapter); otherwise a frozen copy.
"""

from __future__ import annotations

import copy

import torch
from accelerate.utils import is_peft_model
from torch import nn
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerBase,
    ProcessorMixin,
)
from transformers.utils import logging
from trl.trainer.utils import (
    get_config_model_id,
)

from trl_dam.models import (
    REFERENCE_ADAPTER,
    enable_own_activation_checkpointing,
    eos_token_ids,
    load_diffusion_lm,
    load_tokenizer,
    switch_off_activation_checkpointing,
    unwrap_model,
)

from .base_config import DiffusionRLConfig

logger = logging.get_logger(__name__)


class ModelSetupMixin:
    """Loads the policy and tokenizer, wraps PEFT and builds the frozen reference (see the module docstring)."""

    @staticmethod
    def _load_model(
        model: str | PreTrainedModel, args: DiffusionRLConfig, quantization_config=None
    ) -> tuple[PreTrainedModel, str]:
        """The model and its id. A string loads through `load_diffusion_lm` with `model_init_kwargs` and, as in TRL's
        GRPO, `quantization_config` (k-bit weights, placed on this process's device unless a `device_map` is given).
        """
        if not isinstance(model, str):
            if args.model_init_kwargs:
                logger.warning("`model_init_kwargs` is ignored because the model is already instantiated.")
            if quantization_config is not None:
                logger.warning("`quantization_config` is ignored because the model is already instantiated.")
            return model, get_config_model_id(model.config)
        kwargs = dict(args.model_init_kwargs or {})
        if quantization_config is not None:
            if "quantization_config" in kwargs:
                raise ValueError(
                    "`quantization_config` was given both to the trainer and in `args.model_init_kwargs`; set it once."
                )
            kwargs["quantization_config"] = quantization_config
        if kwargs.get("quantization_config") is not None:
            # k-bit weights cannot move after loading: put them on this process's device (what TRL's
            # `get_kbit_device_map` did; it is gone from TRL 1.16, whose script passes `{"": local_process_index}`).
            kwargs.setdefault("device_map", {"": args.device})
        if args.distributed_state.distributed_type in ("MULTI_GPU", "DEEPSPEED"):
            kwargs["device_map"] = None  # "auto" placement fights data parallelism
        kwargs["trust_remote_code"] = _trusts_remote_code(args)
        return load_diffusion_lm(model, **kwargs), model

    def _load_processing_class(self, processing_class, model: nn.Module, model_id: str, args: DiffusionRLConfig):
        if processing_class is None:
            revision = (args.model_init_kwargs or {}).get("revision")
            processing_class = load_tokenizer(
                model_id, trust_remote_code=_trusts_remote_code(args), revision=revision, padding_side="left"
            )
        tokenizer = processing_class.tokenizer if isinstance(processing_class, ProcessorMixin) else processing_class
        if not isinstance(tokenizer, PreTrainedTokenizerBase):
            raise TypeError("`processing_class` must be a tokenizer or a processor with a `.tokenizer`.")
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._tokenizer = tokenizer
        self.pad_token_id = tokenizer.pad_token_id
        # A completion ends at the first of the tokenizer's or the model's end-of-sequence ids (e.g. LLaDA's
        # <|eot_id|> then <|endoftext|> padding).
        self.eos_token_ids = eos_token_ids(tokenizer, model)
        return processing_class

    @staticmethod
    def _turn_off_unsupported_checkpointing(model: nn.Module, args: DiffusionRLConfig) -> None:
        """Models without transformers checkpointing use their own where they have one (LLaDA), else run without."""
        if not args.gradient_checkpointing or getattr(unwrap_model(model), "supports_gradient_checkpointing", False):
            return
        name = type(unwrap_model(model)).__name__
        if enable_own_activation_checkpointing(model, args.gradient_checkpointing_kwargs):
            logger.info(f"{name} checkpoints activations with its own `set_activation_checkpointing`.")
        else:
            logger.warning(f"{name} does not support gradient checkpointing; turning it off.")
        # The Trainer would call the transformers API, which such a model rejects.
        args.gradient_checkpointing = False
        if hasattr(args, "activation_checkpointing"):
            args.activation_checkpointing = False

    def _wrap_peft(self, model: nn.Module, peft_config, args: DiffusionRLConfig) -> nn.Module:
        quantized = getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False)
        if peft_config is None:
            if quantized and not is_peft_model(model):
                raise ValueError("A quantized model can only be trained through adapters: pass a `peft_config`.")
            if is_peft_model(model) and self._needs_reference(args):
                _add_reference_adapter(model)
        else:
            from peft import PeftConfig, get_peft_model

            if not isinstance(peft_config, PeftConfig):
                raise TypeError(f"`peft_config` must be a `peft.PeftConfig`, got {type(peft_config).__name__}.")
            if is_peft_model(model):
                raise ValueError("Pass either a PeftModel or a `peft_config`, not both (merge the adapter first).")
            plugin = args.deepspeed_plugin
            # As TRL's GRPO: under ZeRO-3, adapters of a non-quantized model keep the base dtype, because ZeRO-3
            # gathers a module's parameters into one buffer of the first one's dtype (fp32 LoRA next to bf16 weights
            # fails at the first step).
            zero3 = plugin is not None and plugin.zero_stage == 3
            model = get_peft_model(
                model, peft_config, **({"autocast_adapter_dtype": False} if zero3 and not quantized else {})
            )
            if args.gradient_checkpointing:
                model.enable_input_require_grads()  # frozen embeddings would otherwise cut the checkpointed graph
        if quantized:
            _cast_adapters_to_bf16(model)
        return model

    def _needs_reference(self, args: DiffusionRLConfig) -> bool:
        """Whether the method uses reference log-probs (a KL term); DAM always does (beta > 0)."""
        return getattr(args, "beta", 0.0) > 0

    def _create_reference_model(self, model: nn.Module, args: DiffusionRLConfig) -> nn.Module | None:
        # With PEFT the reference lives in the same network (see `_reference_denoiser`): no second copy of the weights.
        if is_peft_model(model) or not self._needs_reference(args):
            return None
        if any(hasattr(p, "ds_id") for p in model.parameters()):
            # Loaded sharded under ZeRO-3's `zero.Init`: a deep copy would hold empty shards; load the weights again.
            reference = self._load_model(get_config_model_id(model.config), args)[0].eval()
        else:
            reference = copy.deepcopy(model).eval()
            # The copy inherits the model's own checkpointing (LLaDA checkpoints even without gradients): useless here.
            switch_off_activation_checkpointing(reference)
        reference.requires_grad_(False)
        return reference

    def _prepare_frozen(self, module: nn.Module | None) -> nn.Module | None:
        if module is None:
            return None
        if self.is_deepspeed_enabled:
            from trl.models.utils import prepare_deepspeed

            return prepare_deepspeed(module, self.accelerator)
        return self.accelerator.prepare_model(module, evaluation_mode=True)


def _add_reference_adapter(model) -> None:
    r"""Freeze a copy of a PeftModel's active adapter as the ``"ref"`` adapter, as TRL's GRPO does.

    A PeftModel passed in (e.g. an SFT LoRA to continue from) *is* the model to start from, so the reference
    $p^{\mathrm{base}}$ of $p^* \propto p^{\mathrm{base}} e^{r/\beta}$ must be the base network with that adapter,
    not the bare base: disabling the adapters would silently change the target.
    """
    name = model.active_adapter
    model.add_adapter(REFERENCE_ADAPTER, model.peft_config[name])
    source, target = f".{name}.", f".{REFERENCE_ADAPTER}."
    with torch.no_grad():
        for param_name, param in model.named_parameters():
            if source in param_name:
                model.get_parameter(param_name.replace(source, target)).copy_(param)
    for param_name, param in model.named_parameters():
        if target in param_name:
            param.requires_grad_(False)


def _cast_adapters_to_bf16(model: nn.Module) -> None:
    """QLoRA's adapter dtype, as TRL's GRPO sets it: trainable adapter weights (and the frozen ``"ref"`` copy, so it
    stays equal to them) in bf16, except DoRA's magnitude vectors, whose small updates bf16 would round away."""
    for name, param in model.named_parameters():
        if (param.requires_grad or f".{REFERENCE_ADAPTER}." in name) and "lora_magnitude_vector" not in name:
            param.data = param.data.to(torch.bfloat16)


def _trusts_remote_code(args: DiffusionRLConfig) -> bool:
    """One decision for the policy, its reference and its tokenizer: `model_init_kwargs["trust_remote_code"]` when
    given (as TRL lets it override), else `args.trust_remote_code`; only `True` trusts."""
    return (args.model_init_kwargs or {}).get("trust_remote_code", args.trust_remote_code) is True
