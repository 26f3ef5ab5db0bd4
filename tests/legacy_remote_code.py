"""Hub-layout checkpoints whose own code is written the way LLaDA's and Dream's hub code is (for transformers 4.4x).

Written for these tests (no third-party code): each file reproduces the habits of the official remote code that
break on transformers 5, one per fix in `trl_dam.models.remote_compat`, on top of the project's tiny stand-ins so the
logits are known:

* LLaDA: an `__init__` that never calls `post_init`, `tie_weights(self)` without arguments, a config that ends up
  without `use_cache` (read by `forward`), and a config module that registers itself with `AutoConfig` on import;
* Dream: a rotary embedding that looks up `ROPE_INIT_FUNCTIONS["default"]` and keeps `inv_freq` in a non-persistent
  buffer, an `_init_weights` override that only knows linear and embedding layers, `_tied_weights_keys` as a list, a
  `GenerationConfig` subclass whose `validate` takes no keywords, read by a `from_pretrained` override, and a
  tokenizer declared through `auto_map`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trl_dam.models import build_tiny_masked_lm

LLADA_FILES = {
    "configuration_llada.py": """
from transformers import AutoConfig

from trl_dam.models.tiny_llada import TinyLLaDAConfig


class LLaDAConfig(TinyLLaDAConfig):
    model_type = "llada"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # What LLaDA's config looks like under transformers 5: no `use_cache` attribute.
        vars(self).pop("use_cache", None)


AutoConfig.register("llada", LLaDAConfig)
""",
    "modeling_llada.py": """
from transformers import PreTrainedModel

from trl_dam.models.tiny_llada import TinyLLaDABackbone, TinyLLaDAModelLM

from .configuration_llada import LLaDAConfig


class LLaDAModelLM(TinyLLaDAModelLM):
    config_class = LLaDAConfig

    def __init__(self, config):
        PreTrainedModel.__init__(self, config)  # and no post_init(), as in LLaDA's code
        self.model = TinyLLaDABackbone(config)

    def forward(self, input_ids=None, attention_mask=None, use_cache=None, **kwargs):
        if use_cache is None:
            use_cache = self.config.use_cache
        return super().forward(input_ids=input_ids, attention_mask=attention_mask, use_cache=use_cache, **kwargs)

    def tie_weights(self):
        if self.config.tie_word_embeddings:
            self.model.transformer["ff_out"].weight = self.model.transformer["wte"].weight
""",
}

DREAM_FILES = {
    "configuration_dream.py": """
from trl_dam.models.tiny_dream import TinyDreamConfig


class DreamConfig(TinyDreamConfig):
    model_type = "Dream"

    def __init__(self, rope_scaling=None, use_cache=True, **kwargs):
        super().__init__(**kwargs)
        self.rope_scaling = rope_scaling
        self.use_cache = use_cache
""",
    "generation_utils.py": """
from transformers import GenerationConfig


class DreamGenerationConfig(GenerationConfig):
    def __init__(self, **kwargs):
        self.steps = kwargs.pop("steps", 512)
        self.mask_token_id = kwargs.pop("mask_token_id", None)
        super().__init__(**kwargs)

    def validate(self, is_init=False):
        pass


# Dream's sampler (diffusion_generate) lives in this mixin; its name alone makes transformers save the generation
# config.
class DreamGenerationMixin:
    pass
""",
    "modeling_dream.py": """
import torch
from torch import nn
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from trl_dam.models._layers import apply_rotary
from trl_dam.models.tiny_dream import TinyDreamBackbone, TinyDreamModel

from .configuration_dream import DreamConfig
from .generation_utils import DreamGenerationConfig, DreamGenerationMixin


class DreamRotaryEmbedding(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.rope_kwargs = {}
        scaling = config.rope_scaling or {}
        self.rope_type = scaling.get("rope_type", scaling.get("type", "default"))
        self.rope_init_fn = ROPE_INIT_FUNCTIONS[self.rope_type]
        inv_freq, self.attention_scaling = self.rope_init_fn(config, None, **self.rope_kwargs)
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.original_inv_freq = self.inv_freq

    def forward(self, position_ids, dtype):
        angles = position_ids.float()[..., None] * self.inv_freq
        angles = torch.cat([angles, angles], dim=-1)[:, None]
        return (angles.cos() * self.attention_scaling).to(dtype), (angles.sin() * self.attention_scaling).to(dtype)


class DreamBaseModel(TinyDreamBackbone):
    def __init__(self, config):
        super().__init__(config)
        self.rotary_emb = DreamRotaryEmbedding(config)

    def forward(self, inputs_embeds, mask, position_ids, output_hidden_states=False):
        cos, sin = self.rotary_emb(position_ids, inputs_embeds.dtype)
        x = inputs_embeds
        for layer in self.layers:
            if self.gradient_checkpointing and self.training:
                x = self._gradient_checkpointing_func(layer.__call__, x, mask, cos, sin)
            else:
                x = layer(x, mask, cos, sin)
        return self.norm(x), None


class DreamModel(DreamGenerationMixin, TinyDreamModel):
    config_class = DreamConfig
    _tied_weights_keys = ["lm_head.weight"]

    def __init__(self, config):
        super().__init__(config)
        self.model = DreamBaseModel(config)
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.config.initializer_range)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        model.generation_config = DreamGenerationConfig.from_pretrained(pretrained_model_name_or_path)
        return model
""",
    "tokenization_dream.py": """
from transformers import PreTrainedTokenizerFast


class DreamTokenizer(PreTrainedTokenizerFast):
    pass
""",
}

LEGACY_FILES = {"llada": LLADA_FILES, "dream": DREAM_FILES}
CONFIG = {
    "llada": {
        "model_type": "llada",
        "architectures": ["LLaDAModelLM"],
        "auto_map": {
            "AutoConfig": "configuration_llada.LLaDAConfig",
            "AutoModel": "modeling_llada.LLaDAModelLM",
            "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM",
        },
    },
    "dream": {
        "model_type": "Dream",
        "architectures": ["DreamModel"],
        "auto_map": {"AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"},
    },
}


def write_legacy_checkpoint(folder: Path, kind: str, tokenizer, seed: int = 0):
    """Save the tiny `kind` model (weights and tokenizer) at `folder` in the hub layout of the official checkpoint,
    with the legacy remote code above; returns the tiny model (the expected logits)."""
    model = build_tiny_masked_lm(tokenizer, kind, seed=seed).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(CONFIG[kind])
    (folder / "config.json").write_text(json.dumps(config))
    for name, source in LEGACY_FILES[kind].items():
        (folder / name).write_text(source.lstrip())
    if kind == "dream":
        generation = {"mask_token_id": model.config.mask_token_id, "steps": 16}
        (folder / "generation_config.json").write_text(json.dumps(generation))
        tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
        tokenizer_config["auto_map"] = {"AutoTokenizer": ["tokenization_dream.DreamTokenizer", None]}
        tokenizer_config["tokenizer_class"] = "DreamTokenizer"
        (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    return model


@pytest.fixture(name="legacy_remote_code")
def legacy_remote_code_fixture(isolated_remote_code):
    """`legacy_remote_code` (import this function into a test module to use it): like `isolated_remote_code`, and
    forgets the model types that the legacy fixtures register with `AutoConfig`
    on import (as LLaDA's hub code does)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    registered = set(CONFIG_MAPPING._extra_content)
    yield
    for model_type in set(CONFIG_MAPPING._extra_content) - registered:
        del CONFIG_MAPPING._extra_content[model_type]
