from datasets import Dataset
from peft import LoraConfig

from trl_dam import DAMConfig, DAMTrainer
from trl_dam.models import build_char_tokenizer, build_tiny_masked_lm

tokenizer = build_char_tokenizer("abcdefgh ")
model = build_tiny_masked_lm(tokenizer, kind="llada")  # LLaDA's module names: q_proj, k_proj, v_proj, attn_out, ...


def reward_a(completions, **kwargs):
    return [c.count("a") / 6 for c in completions]


# With a peft_config the model is wrapped in adapters and the reference p_base is the same network with its
# adapters disabled: no second copy of the weights (the paper's recipe uses r=128, alpha=64).
peft_config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj"])
args = DAMConfig(
    output_dir="tiny-dam-lora", beta=0.05, num_generations=4, max_completion_length=6, max_steps=2, bf16=False
)
trainer = DAMTrainer(
    model,
    reward_a,
    args=args,
    train_dataset=Dataset.from_dict({"prompt": ["abc", "de"]}),
    processing_class=tokenizer,
    peft_config=peft_config,
)
assert trainer.ref_model is None  # the reference is the adapter-free base, not a copy
trainer.model.print_trainable_parameters()
trainer.train()
