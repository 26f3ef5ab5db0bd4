"""PEFT: LoRA-wrapped denoisers keep their adapter, can be disabled, and merge/save/load to the same logits."""

import pytest
import torch
from model_helpers import MASK, X, lora_with_random_b
from peft import LoraConfig, get_peft_model

from trl_dam.models import TINY_KINDS, build_tiny_masked_lm, load_diffusion_lm, resolve_adapter

pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")

LORA_TARGETS = {
    "bert": ["query", "value"],
    "modernbert": ["Wqkv"],
    "gemma": ["q_proj", "v_proj"],
    # LLaDA's names; "ff_out" is both the MLP down-projection and the LM head, and LoRA must handle both
    "llada": ["q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out"],
    "dream": ["q_proj", "v_proj"],
}


def _lora(model, kind):
    return lora_with_random_b(model, LORA_TARGETS[kind])


@pytest.mark.parametrize("kind", TINY_KINDS)
def test_lora_wrapped_model(tokenizer, tmp_path, kind):
    base = build_tiny_masked_lm(tokenizer, kind)
    adapter = resolve_adapter(base, tokenizer)
    with torch.no_grad():
        base_logits = adapter.logits(base, X, MASK)

    peft_model = _lora(base, kind)
    assert resolve_adapter(peft_model, tokenizer) == adapter
    if kind == "llada":
        head = peft_model.get_base_model().model.transformer["ff_out"]
        assert hasattr(head, "lora_A"), "the LM head named ff_out is a LoRA target too"
    with torch.no_grad():
        lora_logits = adapter.logits(peft_model, X, MASK)
        with peft_model.disable_adapter():
            disabled_logits = adapter.logits(peft_model, X, MASK)
    assert (lora_logits - base_logits).abs().max() > 1e-3
    torch.testing.assert_close(disabled_logits, base_logits)

    merged = peft_model.merge_and_unload()
    assert type(merged) is type(base)
    merged.save_pretrained(tmp_path)
    reloaded = load_diffusion_lm(tmp_path)
    assert resolve_adapter(reloaded, tokenizer) == adapter
    with torch.no_grad():
        torch.testing.assert_close(adapter.logits(merged, X, MASK), lora_logits)
        torch.testing.assert_close(adapter.logits(reloaded, X, MASK), lora_logits)


def test_lora_gradients_reach_only_adapter_weights(tokenizer):
    peft_model = _lora(build_tiny_masked_lm(tokenizer, "llada"), "llada").train()
    adapter = resolve_adapter(peft_model, tokenizer)
    logits = adapter.logits(peft_model, X, MASK)
    logits.log_softmax(-1)[:, -4:, 9].sum().backward()
    trainable = {name for name, param in peft_model.named_parameters() if param.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)
    grads = {name: param.grad for name, param in peft_model.named_parameters()}
    assert all(grads[name] is None for name in grads if name not in trainable)
    assert any(grads[name].abs().sum() > 0 for name in trainable if "lora_A" in name)


def test_unwrap_model_strips_parallel_compile_and_peft_wrappers(tokenizer):
    """`unwrap_model` (accelerate's `extract_model_from_parallel`, then PEFT's base) reaches the transformers model
    through DataParallel, torch.compile and LoRA wrappers, in any nesting."""
    from trl_dam.models import unwrap_model

    base = build_tiny_masked_lm(tokenizer, "llada")
    peft_model = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj"]))
    for wrapped in (
        peft_model,
        torch.nn.DataParallel(peft_model),
        torch.compile(peft_model),
        torch.nn.DataParallel(torch.compile(peft_model)),
        torch.compile(base),
    ):
        assert unwrap_model(wrapped) is base
    assert unwrap_model(base) is base


def _hub_cache(cache, repo_id: str, folder) -> None:
    """Lay out `folder`'s files as the hub cache holds a downloaded snapshot of `repo_id` (read offline)."""
    import shutil

    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(folder, snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)


def test_adapter_folder_and_hub_adapter_id_load_base_and_adapter(tokenizer, tmp_path, monkeypatch):
    """A LoRA run's output (adapter only) loads as its base plus the adapter, from a folder and from a hub id (here
    read from a hub cache, with `local_files_only`): detected by `PeftConfig` loading and no `config.json`, hub keywords honoured."""
    import huggingface_hub
    from peft import PeftModel

    from trl_dam.models import is_adapter_folder

    # PEFT's weight loader honours only the global offline switch, not `local_files_only`.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    base_path, adapter_path = tmp_path / "base", tmp_path / "adapter"
    base = build_tiny_masked_lm(tokenizer, "llada")
    base.save_pretrained(base_path)
    peft_model = _lora(build_tiny_masked_lm(tokenizer, "llada"), "llada")
    peft_model.peft_config["default"].base_model_name_or_path = str(base_path)
    peft_model.save_pretrained(adapter_path)
    adapter = resolve_adapter(base, tokenizer)
    with torch.no_grad():
        expected = adapter.logits(peft_model, X, MASK)
        assert (expected - adapter.logits(base, X, MASK)).abs().max() > 1e-3

    cache = tmp_path / "cache"
    _hub_cache(cache, "tester/tiny-lora", adapter_path)
    offline = {"local_files_only": True}
    for source, hub_kwargs in ((adapter_path, {}), ("tester/tiny-lora", {"cache_dir": str(cache), **offline})):
        assert is_adapter_folder(source, **hub_kwargs)
        loaded = load_diffusion_lm(source, **hub_kwargs)
        assert isinstance(loaded, PeftModel)
        with torch.no_grad():
            torch.testing.assert_close(adapter.logits(loaded, X, MASK), expected)
    assert not is_adapter_folder("tester/tiny-lora", cache_dir=str(tmp_path / "empty"), **offline)  # not found
    assert not is_adapter_folder(base_path)  # a full model
