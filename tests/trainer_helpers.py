"""What the end-to-end trainer tests share: a tiny LLaDA-shaped model and its character tokenizer, a
completion-dependent reward, CPU training arguments, and the logged history."""

from __future__ import annotations

from datasets import Dataset

from trl_dam.models import build_char_tokenizer, build_tiny_masked_lm

N = 6  # completion length
PROMPTS = ["abc", "de", "fgh a", "h", "bb", "cab", "g", "ef", "ha", "gg", "bd", "c"]


def char_tokenizer():
    return build_char_tokenizer("abcdefgh ")


def tiny_model(tokenizer, seed: int = 0):
    return build_tiny_masked_lm(tokenizer, kind="llada", seed=seed)


def frac_a(completions, **kwargs):
    """Fraction of the completion canvas spelled "a": completion-dependent, so the rollouts of a prompt differ."""
    texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
    return [t.count("a") / N for t in texts]


def cpu_config_kwargs(tmp_path, **overrides) -> dict:
    """Config keywords of a short, seeded CPU run with 8 rollouts of 4 per prompt and N-token completions."""
    kwargs = dict(
        output_dir=str(tmp_path / "out"),
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        max_steps=3,
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=N,
        learning_rate=1e-2,
        lr_scheduler_type="constant",
        logging_steps=1,
        seed=0,
    )
    return kwargs | overrides


def build_trainer(trainer_class, args, tokenizer, reward_funcs=frac_a, dataset=None, model=None):
    dataset = dataset if dataset is not None else Dataset.from_dict({"prompt": PROMPTS})
    model = model if model is not None else tiny_model(tokenizer)
    return trainer_class(model, reward_funcs, args=args, train_dataset=dataset, processing_class=tokenizer)


def history(trainer, key):
    return [entry[key] for entry in trainer.state.log_history if key in entry]
