"""DAM on one d1 task, then d1's evaluation of the base and the fine-tuned model: the body of `examples/countdown.py`
and `examples/gsm8k.py`.

It is the `trl-dam` script (:mod:`trl_dam.scripts.dam`) with a task and the paper's LLaDA-8B recipe as defaults,
followed by :func:`trl_dam.evaluation.evaluate_generation_lengths` on the task's evaluation set (d1's evaluation
prompts, low-confidence block decoding at 128/256/512 tokens) for the base (adapters disabled, or the reference
copy) and the fine-tuned policy. It prints the paper-shaped table and writes it to `output_dir/eval_results.json`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from trl_dam.evaluation import D1_BLOCK_LENGTH, D1_GENERATION_LENGTHS

__all__ = ["LLADA_DAM_RECIPE", "TaskEvaluationArguments", "make_task_parser", "run_task_example"]

#: The DAM paper's LLaDA-8B-Instruct recipe (App. C.2: LoRA r 128 / alpha 64, K = 12, batch 12 per GPU with 2
#: accumulation steps, AdamW beta2 0.99, weight decay 0.1, lr 3e-6, gradient clip 0.2, generation length 128) with
#: d1's unstated-in-the-paper choices (constant schedule with warm-up, bf16, LoRA dropout 0.05, two tokens per
#: denoiser call). Tasks add their step count (GSM8K 3000, Countdown 4000, Sudoku 2500).
LLADA_DAM_RECIPE = {
    "model_name_or_path": "GSAI-ML/LLaDA-8B-Instruct",
    "dtype": "bfloat16",
    "bf16": True,
    "use_peft": True,
    "lora_r": 128,
    "lora_alpha": 64,
    "lora_dropout": 0.05,
    # d1's list; on LLaDA only q_proj, k_proj, v_proj and up_proj exist, as in d1's runs.
    "lora_target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj", "gate_proj"],
    "max_completion_length": 128,
    "diffusion_steps": 64,
    "num_generations": 12,
    "per_device_train_batch_size": 12,
    "gradient_accumulation_steps": 2,
    "beta": 0.05,
    "learning_rate": 3e-6,
    "adam_beta1": 0.9,
    "adam_beta2": 0.99,
    "weight_decay": 0.1,
    "max_grad_norm": 0.2,
    "lr_scheduler_type": "constant_with_warmup",
    "warmup_steps": 1,
    "logging_steps": 1,
    "save_steps": 100,
}


@dataclass
class TaskEvaluationArguments:
    """d1's evaluation after training (of the base and of the fine-tuned model)."""

    eval_generation_lengths: list[int] = field(
        default_factory=lambda: list(D1_GENERATION_LENGTHS),
        metadata={"help": "Generation lengths of the final evaluation (d1: 128 256 512; none: skip it)."},
    )
    eval_block_length: int = field(default=D1_BLOCK_LENGTH, metadata={"help": "Decoder block size (d1: 32)."})
    eval_prompt_style: str = field(
        default="d1_eval", metadata={"help": "Prompt style of the evaluation set ('d1_eval': d1's, with prefill)."}
    )
    eval_num_problems: int | None = field(
        default=None,
        metadata={"help": "Generated tasks: problems to generate (256); GSM8K/MATH500: keep the first N (all)."},
    )
    eval_dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "Evaluation set: a hub id, folder or data file; for Countdown d1's countdown_cd3_test.jsonl layout "
            "(default: generated Countdown problems; --dataset_name for GSM8K, else the hub set)."
        },
    )
    eval_batch_size: int = field(default=8, metadata={"help": "Sequences per decoder call (d1: 8)."})
    eval_base: bool = field(default=True, metadata={"help": "Also evaluate the base model (adapters disabled)."})


def make_task_parser():
    """`TrlParser((DAMScriptArguments, DAMConfig, DAMModelConfig, TaskEvaluationArguments))`."""
    from trl import TrlParser

    from trl_dam.scripts.dam import DAMModelConfig, DAMScriptArguments
    from trl_dam.trainers import DAMConfig

    return TrlParser((DAMScriptArguments, DAMConfig, DAMModelConfig, TaskEvaluationArguments))


def run_task_example(task: str, defaults: dict, args: list[str] | None = None) -> dict:
    """Parse `args` (default: the command line) over `defaults` (explicit flags win), train DAM on `task`, save the
    model and its card (push with `--push_to_hub`), evaluate base and fine-tuned models, return the evaluation."""
    from trl_dam.evaluation import (
        base_for_generation,
        evaluate_generation_lengths,
        format_length_table,
        load_eval_dataset,
        policy_for_generation,
    )
    from trl_dam.scripts.dam import make_trainer, save_or_push

    parser = make_task_parser()
    parser.set_defaults_with_config(task=task, **defaults)
    script_args, training_args, model_args, eval_args = parser.parse_args_and_config(args)
    if script_args.task != task:
        raise ValueError(f"This example trains on {task!r}; use the `trl-dam` script for --task {script_args.task}.")

    # Load the evaluation set before training: a missing dataset should fail in seconds, not after hours.
    eval_set = None
    if eval_args.eval_generation_lengths:
        eval_source = eval_args.eval_dataset_name or (script_args.dataset_name if task == "gsm8k" else None)
        eval_set = load_eval_dataset(
            task,
            eval_args.eval_num_problems,
            prompt_style=eval_args.eval_prompt_style,
            seed=training_args.seed + 1,
            dataset_name=eval_source,
        )
    trainer = make_trainer(script_args, training_args, model_args)
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    save_or_push(trainer, script_args, training_args)

    summary: dict = {}
    if eval_set is not None:
        common = {
            "lengths": eval_args.eval_generation_lengths,
            "block_length": eval_args.eval_block_length,
            "batch_size": eval_args.eval_batch_size,
            "accelerator": trainer.accelerator,
            "progress": trainer.accelerator.print,
        }
        tokenizer = trainer.processing_class
        results = {}
        if eval_args.eval_base:
            with base_for_generation(trainer) as (base, disable_adapter):
                results["base"] = {
                    task: evaluate_generation_lengths(
                        base, tokenizer, task, eval_set, disable_adapter=disable_adapter, **common
                    )
                }
        with policy_for_generation(trainer) as (policy, _):
            results["DAM"] = {task: evaluate_generation_lengths(policy, tokenizer, task, eval_set, **common)}
        trainer.accelerator.print(format_length_table(results))
        summary = {
            label: {str(length): r.scores for length, r in per_task[task].items()}
            for label, per_task in results.items()
        }
        if trainer.accelerator.is_main_process:
            path = os.path.join(training_args.output_dir, "eval_results.json")
            with open(path, "w") as f:
                json.dump({"task": task, "num_problems": len(eval_set), "scores": summary}, f, indent=2)
            trainer.accelerator.print(f"Evaluation written to {path}")
    if hasattr(trainer, "end"):  # transformers >= 5.18: finish the trackers and destroy the process group
        trainer.end()
    return summary
