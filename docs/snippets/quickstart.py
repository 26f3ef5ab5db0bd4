from datasets import Dataset

from trl_dam import DAMConfig, DAMTrainer
from trl_dam.models import build_char_tokenizer, build_tiny_masked_lm

# A tiny LLaDA-shaped model built in code, so this runs on a CPU in seconds (or pass "GSAI-ML/LLaDA-8B-Instruct").
tokenizer = build_char_tokenizer("abcdefgh ")
model = build_tiny_masked_lm(tokenizer, kind="llada")


def reward_a(completions, **kwargs):  # TRL's reward signature: one float (or None) per completion
    return [completion.count("a") / 8 for completion in completions]


dataset = Dataset.from_dict({"prompt": ["abc", "de", "fgh", "h", "bb", "cab"]})
# bf16=False trains in fp32, which a CPU needs; keep the bf16 default on GPUs.
args = DAMConfig(output_dir="tiny-dam", beta=0.05, num_generations=4, max_completion_length=8, max_steps=5, bf16=False)
trainer = DAMTrainer(model, reward_a, args=args, train_dataset=dataset, processing_class=tokenizer)
trainer.train()
