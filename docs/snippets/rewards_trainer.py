"""Several rewards with weights, None for a multi-task dataset, and a reward model, in one DAMTrainer."""

from datasets import Dataset
from transformers import BertConfig, BertForSequenceClassification

from trl_dam import DAMConfig, DAMTrainer
from trl_dam.models import build_char_tokenizer, build_tiny_masked_lm

tokenizer = build_char_tokenizer("abcdefgh ")
policy = build_tiny_masked_lm(tokenizer, kind="llada")


def count_a(completions, task, **kwargs):  # scores the "a" rows, abstains on the others
    return [c.count("a") / 6 if t == "a" else None for c, t in zip(completions, task)]


def count_b(completions, task, **kwargs):  # and the other way round
    return [c.count("b") / 6 if t == "b" else None for c, t in zip(completions, task)]


# A sequence-classification model with one label works as a reward too (here a random tiny one; normally a hub id
# such as a trained reward model, whose tokenizer is then loaded for you).
reward_model = BertForSequenceClassification(
    BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
    )
).eval()  # a model built in code starts in training mode (dropout on); from_pretrained returns it in eval mode

dataset = Dataset.from_dict({"prompt": ["abc", "de", "fgh", "bb"], "task": ["a", "b", "a", "b"]})
args = DAMConfig(
    output_dir="tiny-dam-rewards",
    beta=0.05,
    num_generations=4,
    max_completion_length=6,
    max_steps=2,
    reward_weights=[1.0, 1.0, 0.1],  # total = count_a + count_b + 0.1 * reward model, skipping None
    logging_steps=1,
    bf16=False,
)
trainer = DAMTrainer(
    policy,
    [count_a, count_b, reward_model],
    args=args,
    train_dataset=dataset,
    processing_class=tokenizer,
    reward_processing_classes=[None, None, tokenizer],  # the reward model's tokenizer; None for functions
)
trainer.train()
logged = trainer.state.log_history[0]
print({key: logged[key] for key in logged if key.startswith("rewards/")})
