"""`load_diffusion_lm`: save/load round trips of every tiny kind, auto-class choice and the remote-code path."""

import json

import pytest
import torch
from model_helpers import MASK, X
from transformers import AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

from trl_dam.models import (
    TINY_KINDS,
    build_tiny_masked_lm,
    load_diffusion_lm,
    resolve_adapter,
    select_auto_class,
)

AUTO_CLASS = {
    "bert": AutoModelForMaskedLM,
    "modernbert": AutoModelForMaskedLM,
    "gemma": AutoModelForCausalLM,
    "llada": AutoModel,
    "dream": AutoModel,
}


@pytest.mark.parametrize("kind", TINY_KINDS)
def test_save_and_load_roundtrip(tokenizer, tmp_path, kind):
    model = build_tiny_masked_lm(tokenizer, kind, seed=1)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert select_auto_class(model.config) is AUTO_CLASS[kind]

    loaded = load_diffusion_lm(tmp_path)
    loaded_tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert type(loaded) is type(model)
    assert loaded.dtype == torch.float32
    adapter = resolve_adapter(model, tokenizer)
    loaded_adapter = resolve_adapter(loaded, loaded_tokenizer)
    assert loaded_adapter == adapter
    with torch.no_grad():
        torch.testing.assert_close(loaded_adapter.logits(loaded, X, MASK), adapter.logits(model, X, MASK))
        torch.testing.assert_close(loaded_adapter.logits(loaded, X), adapter.logits(model, X))

    half = load_diffusion_lm(tmp_path, torch_dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16
    assert load_diffusion_lm(tmp_path, dtype="float16").dtype == torch.float16  # `dtype=` wins


def test_plain_auto_classes_load_tiny_checkpoints(tokenizer, tmp_path):
    model = build_tiny_masked_lm(tokenizer, "llada")
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=X).logits, model(input_ids=X).logits)


def test_rejects_causal_checkpoints(tokenizer, tmp_path):
    build_tiny_masked_lm(tokenizer, "gemma", use_bidirectional_attention=False).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="use_bidirectional_attention=True"):
        load_diffusion_lm(tmp_path)
    # forcing a class is possible
    assert type(load_diffusion_lm(tmp_path, model_class=AutoModelForCausalLM)).__name__ == "GemmaForCausalLM"


def test_gemma_hub_style_config_is_made_bidirectional_for_padding(tokenizer, tmp_path):
    build_tiny_masked_lm(tokenizer, "gemma", is_causal=True).save_pretrained(tmp_path)
    assert load_diffusion_lm(tmp_path).config.is_causal is False


REMOTE_FILES = {
    "llada": {
        "configuration_llada.py": (
            "from trl_dam.models.tiny_llada import TinyLLaDAConfig\n\n\n"
            "class LLaDAConfig(TinyLLaDAConfig):\n"
            '    model_type = "llada"\n\n'
            "    def __init__(self, **kwargs):\n"
            "        super().__init__(**kwargs)\n"
        ),
        "modeling_llada.py": (
            "from trl_dam.models.tiny_llada import TinyLLaDAModelLM\n\n"
            "from .configuration_llada import LLaDAConfig\n\n\n"
            "class LLaDAModelLM(TinyLLaDAModelLM):\n"
            "    config_class = LLaDAConfig\n"
        ),
    },
    "dream": {
        "configuration_dream.py": (
            "from trl_dam.models.tiny_dream import TinyDreamConfig\n\n\n"
            "class DreamConfig(TinyDreamConfig):\n"
            '    model_type = "Dream"\n\n'
            "    def __init__(self, **kwargs):\n"
            "        super().__init__(**kwargs)\n"
        ),
        "modeling_dream.py": (
            "from trl_dam.models.tiny_dream import TinyDreamModel\n\n"
            "from .configuration_dream import DreamConfig\n\n\n"
            "class DreamModel(TinyDreamModel):\n"
            "    config_class = DreamConfig\n"
        ),
    },
}
REMOTE_CONFIG = {
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


@pytest.mark.parametrize("kind", ["llada", "dream"])
def test_remote_code_checkpoints(tokenizer, tmp_path, isolated_remote_code, kind):
    """A checkpoint laid out like the hub's LLaDA / Dream repos (model_type "llada" / "Dream", auto_map, modeling code
    next to the weights) loads through the remote-code path and resolves to the right adapter."""
    folder = tmp_path / f"remote_{kind}"
    model = build_tiny_masked_lm(tokenizer, kind, seed=2)
    model.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(REMOTE_CONFIG[kind])
    (folder / "config.json").write_text(json.dumps(config))
    for name, source in REMOTE_FILES[kind].items():
        (folder / name).write_text(source)

    with pytest.raises(ValueError, match="trust_remote_code=True"):
        load_diffusion_lm(folder, trust_remote_code=False)
    loaded = load_diffusion_lm(folder)  # trust_remote_code=None: trusted for LLaDA / Dream model types
    assert type(loaded).__name__ == REMOTE_CONFIG[kind]["architectures"][0]
    assert type(loaded).__module__.startswith("transformers_modules")
    adapter = resolve_adapter(loaded, tokenizer)
    assert adapter.name == kind
    with torch.no_grad():
        expected = resolve_adapter(model, tokenizer).logits(model, X, MASK)
        torch.testing.assert_close(adapter.logits(loaded, X, MASK), expected)
