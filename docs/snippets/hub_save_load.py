import torch
from datasets import Dataset
from transformers import AutoTokenizer

from trl_dam import DAMConfig, DAMTrainer
from trl_dam.core import low_confidence_decode
from trl_dam.models import build_char_tokenizer, build_tiny_masked_lm, load_diffusion_lm, resolve_adapter

tokenizer = build_char_tokenizer("abcdefgh ")
model = build_tiny_masked_lm(tokenizer, kind="llada")


def reward_a(completions, **kwargs):
    return [c.count("a") / 6 for c in completions]


args = DAMConfig(
    output_dir="tiny-dam-hub", beta=0.05, num_generations=4, max_completion_length=6, max_steps=2, bf16=False
)
trainer = DAMTrainer(
    model, reward_a, args=args, train_dataset=Dataset.from_dict({"prompt": ["abc", "de"]}), processing_class=tokenizer
)
trainer.train()

# The weights, config and tokenizer go to output_dir, and the model card (README.md) next to them.
trainer.save_model()
trainer.create_model_card(dataset_name="my-prompts")
card = open("tiny-dam-hub/README.md").read()
assert "## Quick start" in card and "Discrete Adjoint Matching" in card

# Load it back as a masked diffusion LM and decode with LLaDA's low-confidence sampler (the card's quick start).
model = load_diffusion_lm("tiny-dam-hub")
tokenizer = AutoTokenizer.from_pretrained("tiny-dam-hub")
adapter = resolve_adapter(model, tokenizer)  # aligned denoiser logits and the mask token id
prompt = tokenizer("abc", return_tensors="pt").input_ids
canvas = torch.cat([prompt, torch.full((1, 6), adapter.mask_token_id)], dim=1)  # the prompt, then 6 masks to fill
output = low_confidence_decode(adapter.bind(model), canvas, adapter.mask_token_id, steps=3, block_length=6)
print(tokenizer.decode(output[0, prompt.shape[1] :], skip_special_tokens=True))
