"""Checkpoints with legacy (transformers-4 style) remote code, as the official LLaDA and Dream repos ship, train under
LoRA with both trainers from their folder, and their adapter and merged model reload to the trained logits."""

import math

import pytest
import torch
from datasets import Dataset
from legacy_remote_code import legacy_remote_code_fixture, write_legacy_checkpoint  # noqa: F401
from peft import LoraConfig
from trainer_helpers import PROMPTS, N, char_tokenizer, cpu_config_kwargs, frac_a, history

from trl_dam import DAMConfig, DAMTrainer, DiffuGRPOConfig, DiffuGRPOTrainer
from trl_dam.models import load_diffusion_lm, resolve_adapter

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

X = torch.tensor([[1, 5, 6, 7, 4, 4, 4, 2], [0, 0, 1, 8, 9, 4, 4, 2]])
MASK = (X != 0).long()
LORA_TARGETS = {
    "llada": ["q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out"],
    "dream": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}
TRAINERS = {"dam": (DAMTrainer, DAMConfig, {}), "diffu_grpo": (DiffuGRPOTrainer, DiffuGRPOConfig, {"block_length": N})}


def _logits(model, tokenizer):
    with torch.no_grad():
        return resolve_adapter(model, tokenizer).logits(model.eval(), X, MASK)


@pytest.mark.parametrize("method", ["dam", "diffu_grpo"])
@pytest.mark.parametrize("kind", ["llada", "dream"])
def test_lora_training_save_and_reload(tmp_path, legacy_remote_code, kind, method):
    tokenizer = char_tokenizer()
    folder = tmp_path / kind
    base_logits = _logits(write_legacy_checkpoint(folder, kind, tokenizer, seed=1), tokenizer)
    trainer_class, config_class, overrides = TRAINERS[method]
    # Dream (which supports it) trains with gradient checkpointing; one case trusts through model_init_kwargs.
    trust = (
        {"model_init_kwargs": {"trust_remote_code": True}} if method == "diffu_grpo" else {"trust_remote_code": True}
    )
    args = config_class(
        **cpu_config_kwargs(tmp_path, max_steps=2, gradient_checkpointing=kind == "dream", **overrides, **trust)
    )
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=LORA_TARGETS[kind])
    trainer = trainer_class(
        str(folder), frac_a, args=args, train_dataset=Dataset.from_dict({"prompt": PROMPTS}), peft_config=lora
    )
    # the tokenizer follows the model's remote-code decision (Dream's is declared through auto_map)
    assert type(trainer.processing_class).__name__ == ("DreamTokenizer" if kind == "dream" else "TokenizersBackend")
    assert args.gradient_checkpointing is (kind == "dream")
    trainer.train()

    losses, grad_norms = history(trainer, "loss"), history(trainer, "grad_norm")
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert max(grad_norms) > 0  # (a diffu-GRPO round whose rewards all tie has no gradient)
    trained = _logits(trainer.model, tokenizer)
    assert (trained - base_logits).abs().max() > 1e-3  # with lr 1e-2 the adapter moved the logits

    trainer.save_model(str(tmp_path / "adapter"))
    reloaded = load_diffusion_lm(tmp_path / "adapter", trust_remote_code=True)
    assert type(reloaded).__name__ == "PeftModel"
    torch.testing.assert_close(_logits(reloaded, tokenizer), trained)
    reloaded.merge_and_unload().save_pretrained(tmp_path / "merged")
    merged = load_diffusion_lm(tmp_path / "merged", trust_remote_code=True)
    torch.testing.assert_close(_logits(merged, tokenizer), trained, atol=1e-5, rtol=1e-5)
