"""`examples/countdown.py` and `examples/gsm8k.py`: the paper's LLaDA recipe as defaults, and a 1-step DAM run plus
d1's evaluation on a tiny local LLaDA-shaped checkpoint (LoRA, chat prompts, generated and locally loaded data)."""

from __future__ import annotations

import json
import os
import string
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
from example_scripts import load_example_script

from trl_dam.evaluation import evaluate_generation_lengths, load_eval_dataset
from trl_dam.models import build_char_tokenizer, build_tiny_masked_lm, load_diffusion_lm

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@pytest.mark.parametrize("task, steps", [("countdown", 4000), ("gsm8k", 3000)])
def test_defaults_are_the_papers_llada_recipe(task, steps):
    from trl_dam.scripts.task_example import make_task_parser

    example = load_example_script(task)
    parser = make_task_parser()
    parser.set_defaults_with_config(task=task, **getattr(example, f"{task.upper()}_DEFAULTS"))
    # --use_cpu: transformers refuses bf16 on a machine without a GPU unless told the run is on CPU
    script_args, training_args, model_args, eval_args = parser.parse_args_and_config(["--use_cpu"])
    assert training_args.bf16 and model_args.dtype == "bfloat16"
    assert script_args.task == task and model_args.model_name_or_path == "GSAI-ML/LLaDA-8B-Instruct"
    assert model_args.use_peft and (model_args.lora_r, model_args.lora_alpha) == (128, 64)
    assert model_args.lora_task_type is None
    assert (training_args.num_generations, training_args.per_device_train_batch_size) == (12, 12)
    assert training_args.gradient_accumulation_steps == 2 and training_args.max_steps == steps
    assert training_args.learning_rate == 3e-6 and training_args.max_grad_norm == 0.2
    assert training_args.max_completion_length == 128 and training_args.tokens_per_step == 2
    assert eval_args.eval_generation_lengths == [128, 256, 512] and eval_args.eval_block_length == 32


@pytest.fixture(scope="module")
def tiny_llada(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-llada-chat")
    tokenizer = build_char_tokenizer(string.printable)
    build_tiny_masked_lm(tokenizer, kind="llada", max_position_embeddings=1024, seed=0).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, tokenizer


TINY_RUN = [
    *("--dtype", "float32", "--bf16", "false", "--lora_r", "4", "--lora_alpha", "8"),
    *("--lora_target_modules", "q_proj", "v_proj", "--max_completion_length", "16", "--diffusion_steps", "8"),
    *("--num_generations", "2", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1"),
    *("--max_steps", "1", "--learning_rate", "1e-2", "--save_strategy", "no", "--report_to", "none"),
    *("--disable_tqdm", "true", "--eval_generation_lengths", "32", "--eval_batch_size", "4"),
]  # fmt: skip


def check_evaluation(output_dir: Path, task: str, base_folder: Path, tokenizer, rows, summary):
    """The saved table equals an independent evaluation of the saved adapter and of the base checkpoint."""
    saved = json.loads((output_dir / "eval_results.json").read_text())
    assert saved["task"] == task and saved["num_problems"] == len(rows)
    assert saved["scores"] == summary
    for label, folder in (("DAM", output_dir), ("base", base_folder)):
        model = load_diffusion_lm(folder)
        direct = evaluate_generation_lengths(model, tokenizer, task, rows, [32], batch_size=4)
        assert saved["scores"][label]["32"] == pytest.approx(direct[32].scores)
        assert 0.0 <= direct[32].main_score <= 1.0


def test_countdown_example_trains_saves_and_evaluates(tiny_llada, tmp_path):
    folder, tokenizer = tiny_llada
    output_dir = tmp_path / "out"
    summary = load_example_script("countdown").main(
        [
            *("--model_name_or_path", str(folder), "--output_dir", str(output_dir)),
            *("--max_train_samples", "8", "--eval_num_problems", "4", *TINY_RUN),
        ]
    )
    assert (output_dir / "adapter_config.json").exists() and (output_dir / "README.md").exists()
    assert set(summary) == {"base", "DAM"} and set(summary["DAM"]["32"]) == {"accuracy"}
    rows = load_eval_dataset("countdown", 4, seed=43)  # training seed 42 + 1
    check_evaluation(output_dir, "countdown", folder, tokenizer, rows, summary)


def test_gsm8k_example_on_a_local_copy_of_the_hub_dataset(tiny_llada, tmp_path):
    folder, tokenizer = tiny_llada
    data = tmp_path / "gsm8k"
    (data / "main").mkdir(parents=True)
    # The hub repository's layout: a `main` configuration declared in the README, one file per split.
    (data / "README.md").write_text(
        "---\nconfigs:\n- config_name: main\n  data_files:\n  - split: train\n    path: main/train.jsonl\n"
        "  - split: test\n    path: main/test.jsonl\n---\n"
    )
    problems = [("Tom has 3 apples and buys 4. How many?", "3+4=7\n#### 7"), ("What is 10-2?", "10-2=8\n#### 8")]
    for split in ("train", "test"):
        (data / "main" / f"{split}.jsonl").write_text(
            "\n".join(json.dumps({"question": q, "answer": a}) for q, a in problems * 2)
        )
    output_dir = tmp_path / "out"
    summary = load_example_script("gsm8k").main(
        [
            *("--model_name_or_path", str(folder), "--output_dir", str(output_dir), "--dataset_name", str(data)),
            *TINY_RUN,
        ]
    )
    rows = load_eval_dataset("gsm8k", dataset_name=str(data))
    assert len(rows) == 4 and rows["answer"] == ["7", "8", "7", "8"]
    check_evaluation(output_dir, "gsm8k", folder, tokenizer, rows, summary)


def test_example_refuses_another_task(tiny_llada):
    with pytest.raises(ValueError, match="This example trains on 'countdown'"):
        load_example_script("countdown").main(
            ["--task", "sudoku", "--use_cpu", "--model_name_or_path", str(tiny_llada[0])]
        )
