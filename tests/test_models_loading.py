"""`load_diffusion_lm`: save/load round trips of every tiny kind, auto-class choice and the remote-code path."""

import json

import pytest
import torch
from datasets import Dataset
from legacy_remote_code import CONFIG as REMOTE_CONFIG
from legacy_remote_code import LEGACY_FILES, legacy_remote_code_fixture, write_legacy_checkpoint  # noqa: F401
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

    for refused in (False, None):  # off unless True, even for the LLaDA / Dream model types
        with pytest.raises(ValueError, match="pass trust_remote_code=True"):
            load_diffusion_lm(folder, trust_remote_code=refused)
    loaded = load_diffusion_lm(folder, trust_remote_code=True)
    assert type(loaded).__name__ == REMOTE_CONFIG[kind]["architectures"][0]
    assert type(loaded).__module__.startswith("transformers_modules")
    adapter = resolve_adapter(loaded, tokenizer)
    assert adapter.name == kind
    with torch.no_grad():
        expected = resolve_adapter(model, tokenizer).logits(model, X, MASK)
        torch.testing.assert_close(adapter.logits(loaded, X, MASK), expected)


#: The fixes each legacy fixture needs, and what happens to it without each one.
FIX_FAILURES = {
    "llada": {
        "post_init": (AttributeError, "all_tied_weights_keys"),
        "tie_weights_signature": (TypeError, "recompute_mapping"),
        "use_cache": (AttributeError, "use_cache"),
    },
    "dream": {
        "default_rope": (KeyError, "default"),
        "generation_config_validate": (TypeError, "user_set_attributes"),
        "tied_weights_keys_mapping": (AttributeError, "keys"),
        "rotary_buffers": (AssertionError, "not close"),
    },
}


def _load_forward_save(folder, tokenizer, expected, save_to):
    loaded = load_diffusion_lm(folder, trust_remote_code=True)
    adapter = resolve_adapter(loaded, tokenizer)
    with torch.no_grad():
        padded, unpadded = adapter.logits(loaded, X, MASK), adapter.logits(loaded, X)
    torch.testing.assert_close(padded, expected[0])
    torch.testing.assert_close(unpadded, expected[1])
    loaded.save_pretrained(save_to)
    return loaded


def _expected_logits(model, tokenizer):
    adapter = resolve_adapter(model, tokenizer)
    with torch.no_grad():
        return adapter.logits(model, X, MASK), adapter.logits(model, X)


@pytest.mark.parametrize("kind", ["llada", "dream"])
def test_legacy_remote_code_loads_with_its_fixes(tokenizer, tmp_path, legacy_remote_code, kind, caplog):
    """Remote code in the official checkpoints' transformers-4 style loads, gives the stand-in's logits (padded and
    not), saves with its code, and reloads (a second checkpoint of the same model type, after the first one's code
    registered itself) to the same logits; the fixes applied are the ones it needs, logged by name."""
    from trl_dam.models.remote_compat import APPLIED_ATTR

    folder = tmp_path / kind
    expected = _expected_logits(write_legacy_checkpoint(folder, kind, tokenizer, seed=5), tokenizer)
    with caplog.at_level("WARNING"):
        loaded = _load_forward_save(folder, tokenizer, expected, tmp_path / "saved")
    applied = {
        name for cls in type(loaded).__mro__ + type(loaded.config).__mro__ for name in vars(cls).get(APPLIED_ATTR, ())
    }
    assert applied == set(FIX_FAILURES[kind])
    assert all(name in caplog.text for name in applied)
    assert {"config.json", "model.safetensors", *LEGACY_FILES[kind]} - {"tokenization_dream.py"} <= {
        p.name for p in (tmp_path / "saved").iterdir()
    }
    reloaded = _load_forward_save(tmp_path / "saved", tokenizer, expected, tmp_path / "saved_again")
    assert type(reloaded).__module__ != type(loaded).__module__  # the saved folder's own copy of the code


@pytest.mark.parametrize("kind, fix", [(kind, fix) for kind, failures in FIX_FAILURES.items() for fix in failures])
def test_each_fix_is_needed(tokenizer, tmp_path, legacy_remote_code, monkeypatch, kind, fix):
    """Without one fix, its legacy fixture fails the way the official code does on transformers 5."""
    import trl_dam.models.remote_compat as remote_compat

    monkeypatch.setattr(
        remote_compat, "REMOTE_CODE_FIXES", tuple(f for f in remote_compat.REMOTE_CODE_FIXES if f.name != fix)
    )
    folder = tmp_path / kind
    expected = _expected_logits(write_legacy_checkpoint(folder, kind, tokenizer, seed=5), tokenizer)
    error, text = FIX_FAILURES[kind][fix]
    with pytest.raises(error, match=text):
        _load_forward_save(folder, tokenizer, expected, tmp_path / "saved")


def test_fixes_leave_transformers_classes_alone():
    from trl_dam.models import apply_remote_code_fixes
    from trl_dam.models.tiny_llada import TinyLLaDAModelLM

    assert apply_remote_code_fixes(TinyLLaDAModelLM, "model") == []
    with pytest.raises(ValueError, match="target"):
        apply_remote_code_fixes(TinyLLaDAModelLM, "tokenizer")


CODE_THAT_WRITES = """
from pathlib import Path

from trl_dam.models.tiny_llada import TinyLLaDAConfig

Path(__file__).resolve().parents[3].joinpath("{marker}").write_text("remote code ran")


class LLaDAConfig(TinyLLaDAConfig):
    model_type = "llada"
"""


def test_remote_code_does_not_run_without_the_flag(tokenizer, tmp_path, legacy_remote_code):
    """A local folder whose config says model_type "llada" with an auto_map to code that writes a file: nothing runs
    (model, trainer, tokenizer) until trust_remote_code=True is passed."""
    from trl_dam import DAMConfig, DAMTrainer

    folder = tmp_path / "ckpt"
    write_legacy_checkpoint(folder, "llada", tokenizer)
    marker = tmp_path / "modules" / "written_by_remote_code"
    # HF copies the code to modules/transformers_modules/ckpt/<hash>/: parents[3] of the copy is tmp_path/modules.
    (folder / "configuration_llada.py").write_text(CODE_THAT_WRITES.format(marker=marker.name))
    expected = "ships its own Python code .*configuration_llada.LLaDAConfig.* pass trust_remote_code=True"
    for refused in (False, None):
        with pytest.raises(ValueError, match=expected):
            load_diffusion_lm(folder, trust_remote_code=refused)
    args = DAMConfig(output_dir=str(tmp_path / "out"), use_cpu=True, report_to="none")
    assert args.trust_remote_code is False
    with pytest.raises(ValueError, match=expected):
        DAMTrainer(
            str(folder),
            lambda completions, **kw: [0.0] * len(completions),
            args=args,
            train_dataset=Dataset.from_dict({"prompt": ["ab"] * 16}),
        )
    assert not marker.exists()

    load_diffusion_lm(folder, trust_remote_code=True)
    assert marker.read_text() == "remote code ran"


def test_remote_tokenizer_needs_the_flag(tokenizer, tmp_path, legacy_remote_code):
    """Dream's tokenizer is declared through auto_map: refused with the same message unless trusted, then loaded."""
    from trl_dam.models import load_tokenizer

    folder = tmp_path / "dream"
    write_legacy_checkpoint(folder, "dream", tokenizer)
    with pytest.raises(ValueError, match=r"tokenization_dream.DreamTokenizer.* pass trust_remote_code=True"):
        load_tokenizer(folder)
    loaded = load_tokenizer(folder, trust_remote_code=True)
    assert type(loaded).__name__ == "DreamTokenizer"
    text = "abc de"
    assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]
