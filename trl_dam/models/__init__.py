"""Masked diffusion LM models: adapters giving aligned denoiser logits, loading, and tiny offline models.

Importing this package registers the project's tiny LLaDA- and Dream-shaped models with the transformers auto
classes, so `AutoModel.from_pretrained(folder)` (and [`load_diffusion_lm`]) can load their checkpoints offline.
"""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .activation_checkpointing import (
    activation_checkpointing_paused,
    enable_own_activation_checkpointing,
    own_checkpointing_backbone,
    switch_off_activation_checkpointing,
)
from .adapters import (
    ADAPTER_KINDS,
    KIND_BIDIRECTIONAL_LM,
    KIND_DREAM,
    KIND_LLADA,
    KIND_MASKED_LM,
    LLADA_DEFAULT_MASK_TOKEN_ID,
    REFERENCE_ADAPTER,
    BidirectionalLMAdapter,
    BoundDenoiser,
    DiffusionLMAdapter,
    DreamAdapter,
    LeftPaddedDenoiser,
    LLaDAAdapter,
    bind_denoiser,
    detect_model_kind,
    left_padding_mask,
    reference_adapter,
    resolve_adapter,
    resolve_mask_token_id,
    unwrap_model,
)
from .completions import completion_lengths, completion_texts, cut_completions, eos_token_ids
from .loading import is_adapter_folder, load_diffusion_lm, load_tokenizer, select_auto_class
from .remote_compat import REMOTE_CODE_FIXES, RemoteCodeFix, apply_remote_code_fixes
from .tiny import DEFAULT_CHAT_TEMPLATE, TINY_KINDS, build_char_tokenizer, build_tiny_masked_lm
from .tiny_dream import TINY_DREAM_MODEL_TYPE, TinyDreamConfig, TinyDreamModel
from .tiny_llada import TINY_LLADA_MODEL_TYPE, TinyLLaDAConfig, TinyLLaDAModelLM

AutoConfig.register(TINY_LLADA_MODEL_TYPE, TinyLLaDAConfig, exist_ok=True)
AutoModel.register(TinyLLaDAConfig, TinyLLaDAModelLM, exist_ok=True)
AutoModelForCausalLM.register(TinyLLaDAConfig, TinyLLaDAModelLM, exist_ok=True)
AutoConfig.register(TINY_DREAM_MODEL_TYPE, TinyDreamConfig, exist_ok=True)
AutoModel.register(TinyDreamConfig, TinyDreamModel, exist_ok=True)

__all__ = [
    "ADAPTER_KINDS",
    "DEFAULT_CHAT_TEMPLATE",
    "KIND_BIDIRECTIONAL_LM",
    "KIND_DREAM",
    "KIND_LLADA",
    "KIND_MASKED_LM",
    "LLADA_DEFAULT_MASK_TOKEN_ID",
    "REFERENCE_ADAPTER",
    "REMOTE_CODE_FIXES",
    "TINY_DREAM_MODEL_TYPE",
    "TINY_KINDS",
    "TINY_LLADA_MODEL_TYPE",
    "BidirectionalLMAdapter",
    "BoundDenoiser",
    "DiffusionLMAdapter",
    "DreamAdapter",
    "LeftPaddedDenoiser",
    "LLaDAAdapter",
    "RemoteCodeFix",
    "TinyDreamConfig",
    "TinyDreamModel",
    "TinyLLaDAConfig",
    "TinyLLaDAModelLM",
    "activation_checkpointing_paused",
    "apply_remote_code_fixes",
    "bind_denoiser",
    "build_char_tokenizer",
    "build_tiny_masked_lm",
    "completion_lengths",
    "completion_texts",
    "cut_completions",
    "detect_model_kind",
    "enable_own_activation_checkpointing",
    "eos_token_ids",
    "is_adapter_folder",
    "left_padding_mask",
    "load_diffusion_lm",
    "load_tokenizer",
    "own_checkpointing_backbone",
    "reference_adapter",
    "resolve_adapter",
    "resolve_mask_token_id",
    "select_auto_class",
    "switch_off_activation_checkpointing",
    "unwrap_model",
]
