# Copyright 2026 The trl_dam developers. Apache-2.0.
"""Reward fine-tuning of a masked diffusion LM on 4x4 Sudoku with Discrete Adjoint Matching (DAM).

Embedded demo (no arguments, CPU, no downloads, about 10 minutes on 2 cores):

    accelerate launch examples/sudoku.py        # or: python examples/sudoku.py

1. builds a tiny BERT-style masked LM with a character tokenizer for the compact format
   ("4x4 sudoku: <16 digits, 0 = blank>\\n" -> the 16 digits of the solved grid) and pre-trains it into an imperfect
   base: 30% of its pre-training answers are correct, 70% come from a sloppy row-only solver, so the base's greedy
   answer is mostly the sloppy one while the correct one keeps real probability;
2. fine-tunes it with `DAMTrainer` on the Sudoku reward (blank-cell accuracy) plus the compact format reward;
3. prints base vs fine-tuned accuracy on held-out puzzles (solution grids never seen in training) at 1x, 2x and 4x
   the training completion budget, the puzzles fully solved, and the estimated accuracy of the optimum
   p* ~ p_base exp(r / beta); saves the model to `outputs/sudoku-dam-tiny` and plots reward and accuracy.

GPU path (LLaDA-8B-Instruct, LoRA, bf16, d1's prompt and evaluation protocol; needs the hub):

    accelerate launch --config_file examples/accelerate_configs/deepspeed_zero2.yaml examples/sudoku.py \\
        --model_name_or_path GSAI-ML/LLaDA-8B-Instruct --trust_remote_code --use_peft --output_dir outputs/llada-sudoku-dam

Any `DAMConfig`, `trl.ModelConfig` or `SudokuScriptArguments` field can be set on the command line or in a YAML file
(`--config`). Defaults depend on the path: the tiny demo's when `--model_name_or_path` is not given, the paper's
recipe otherwise (see `TINY_DEMO_DEFAULTS` and `HUB_MODEL_DEFAULTS`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from trl import ModelConfig, TrlParser, get_peft_config, get_quantization_config

from trl_dam.evaluation import base_for_generation, policy_for_generation
from trl_dam.models import load_tokenizer
from trl_dam.rewards.sudoku import sudoku_compact_format_reward, sudoku_format_reward, sudoku_reward
from trl_dam.scripts.task_example import LLADA_DAM_RECIPE
from trl_dam.sudoku_demo import (
    PretrainConfig,
    SudokuAccuracyCallback,
    build_sudoku_model,
    build_sudoku_tokenizer,
    estimate_optimum_accuracy,
    evaluate_budgets,
    format_results_table,
    plot_training,
    pretrain_base,
)
from trl_dam.tasks.sudoku import generate_sudoku_dataset, generate_sudoku_puzzles
from trl_dam.trainers import DAMConfig, DAMTrainer


@dataclass
class SudokuScriptArguments:
    """Data, evaluation and (for the embedded demo) base-model settings of the Sudoku example."""

    # Data
    num_train_puzzles: int = field(default=2000, metadata={"help": "Training prompts (puzzles) for DAM."})
    num_eval_puzzles: int = field(default=256, metadata={"help": "Held-out puzzles (d1 evaluates 256)."})
    num_blanks: int = field(default=8, metadata={"help": "Empty cells per puzzle (d1's test set has 8)."})
    prompt_style: str | None = field(
        default=None,
        metadata={"help": "'compact' or 'd1'; None: compact for the tiny demo, d1 for a hub model."},
    )
    puzzle_seed: int = field(default=0, metadata={"help": "Seed of the puzzle draws (train and held-out)."})

    # Evaluation
    eval_budget_multiples: list[int] = field(
        default_factory=lambda: [1, 2, 4],
        metadata={"help": "Evaluate at these multiples of the training completion budget (max_completion_length)."},
    )
    eval_block_length: int | None = field(
        default=None,
        metadata={"help": "Block size of the low-confidence decoder; None: the training budget (tiny) or 32 (d1)."},
    )
    eval_sampled: bool = field(
        default=True, metadata={"help": "Also report the accuracy of one exact CTMC sample per puzzle."}
    )
    eval_sampled_multiples: list[int] = field(
        default_factory=lambda: [1],
        metadata={"help": "Budget multiples of the CTMC-sampled evaluation (it costs one call per token)."},
    )
    eval_batch_size: int = field(default=256, metadata={"help": "Sequences per decoder call in evaluation."})
    heldout_eval_steps: int = field(
        default=10,
        metadata={"help": "Greedy held-out accuracy every N DAM steps, for the plot (0: off; single process only)."},
    )
    optimum_num_samples: int = field(
        default=16, metadata={"help": "Base samples per puzzle for the p* estimate (0: skip it)."}
    )
    optimum_num_puzzles: int = field(default=128, metadata={"help": "Held-out puzzles used for the p* estimate."})

    # Embedded demo: the tiny base model and its pre-training
    pretrain_steps: int = field(default=1000, metadata={"help": "Pre-training steps of the tiny base."})
    pretrain_batch_size: int = field(default=64, metadata={"help": "Pre-training batch size."})
    pretrain_learning_rate: float = field(default=2e-3, metadata={"help": "Pre-training peak learning rate."})
    pretrain_num_puzzles: int = field(default=10000, metadata={"help": "Distinct training puzzles for pre-training."})
    pretrain_corruption: str = field(
        default="row_heuristic",
        metadata={"help": "Corrupted pre-training answers: 'row_heuristic', 'random' or 'none'."},
    )
    pretrain_budget_multiples: list[int] = field(
        default_factory=lambda: [1, 1, 2, 4],
        metadata={"help": "Canvas multiples of the pre-training batches, drawn uniformly (repeat one to weight it)."},
    )
    pretrain_corrupt_prob: float = field(
        default=0.7, metadata={"help": "Fraction of pre-training answers that are corrupted."}
    )
    tiny_hidden_size: int = field(default=96, metadata={"help": "Width of the tiny model."})
    tiny_num_layers: int = field(default=3, metadata={"help": "Layers of the tiny model."})
    tiny_num_heads: int = field(default=4, metadata={"help": "Attention heads of the tiny model."})
    tiny_intermediate_size: int = field(default=192, metadata={"help": "MLP width of the tiny model."})
    num_threads: int | None = field(
        default=1, metadata={"help": "torch CPU threads (tiny models run fastest on one); None leaves torch's."}
    )


#: DAMConfig defaults of the embedded CPU demo (tuned to finish in about 10 minutes on 2 cores).
TINY_DEMO_DEFAULTS = {
    "output_dir": "outputs/sudoku-dam-tiny",
    "max_completion_length": 16,  # the 16 digits: the 1x completion budget
    "num_generations": 8,  # K rollouts per training state
    "per_device_train_batch_size": 256,  # rollouts per step: 32 training states x K
    "beta": 0.05,  # p* ~ p_base exp(20 r): strong enough to prefer the correct answer by a wide margin
    "learning_rate": 3e-4,
    "lr_scheduler_type": "constant",
    "warmup_steps": 0,
    "max_grad_norm": 1.0,
    "max_steps": 80,
    "logging_steps": 5,
    "save_strategy": "no",
    "report_to": "none",
    "bf16": False,
    "seed": 42,
}

#: DAMConfig and ModelConfig defaults when --model_name_or_path is given (the paper's LLaDA recipe, d1's evaluation).
HUB_MODEL_DEFAULTS = {
    **{key: value for key, value in LLADA_DAM_RECIPE.items() if key not in ("model_name_or_path", "use_peft")},
    "output_dir": "outputs/sudoku-dam",
    "max_steps": 2500,
    # A plain PeftModel: denoisers are called, never `generate`d, and not every one has the causal-LM generation hooks
    # PEFT's CAUSAL_LM wrapper expects (`--lora_task_type CAUSAL_LM` reproduces d1 on LLaDA).
    "lora_task_type": None,
    "eval_batch_size": 16,
    "heldout_eval_steps": 0,
    "optimum_num_samples": 8,
    "optimum_num_puzzles": 64,
}


def make_parser() -> TrlParser:
    return TrlParser((SudokuScriptArguments, DAMConfig, ModelConfig))


def _asks_for_model(args: list[str]) -> bool:
    """Whether `--model_name_or_path` is given on the command line or in the `--config` YAML file."""
    flags = ("--model_name_or_path", "--model-name-or-path")
    if any(arg in flags or arg.split("=")[0] in flags for arg in args):
        return True
    if "--config" in args and args.index("--config") + 1 < len(args):
        import yaml

        with open(args[args.index("--config") + 1]) as f:
            return bool((yaml.safe_load(f) or {}).get("model_name_or_path"))
    return False


def parse_args(args: list[str] | None = None):
    """Parse the command line (and `--config`) with the defaults of the path it selects; explicit values win."""
    args = list(sys.argv[1:] if args is None else args)
    parser = make_parser()
    parser.set_defaults_with_config(**(HUB_MODEL_DEFAULTS if _asks_for_model(args) else TINY_DEMO_DEFAULTS))
    return parser.parse_args_and_config(args)


def build_tiny_base(script_args: SudokuScriptArguments, training_args: DAMConfig):
    """Build and pre-train the embedded demo's base model; returns (model, tokenizer, pre-training summary)."""
    tokenizer = build_sudoku_tokenizer()
    multiples, pretrain_multiples = script_args.eval_budget_multiples, script_args.pretrain_budget_multiples
    model = build_sudoku_model(
        tokenizer,
        hidden_size=script_args.tiny_hidden_size,
        num_layers=script_args.tiny_num_layers,
        num_heads=script_args.tiny_num_heads,
        intermediate_size=script_args.tiny_intermediate_size,
        max_position_embeddings=32 + training_args.max_completion_length * max(*multiples, *pretrain_multiples),
        seed=training_args.seed,
    )
    pairs = generate_sudoku_puzzles(
        script_args.pretrain_num_puzzles, seed=script_args.puzzle_seed + 2, num_blanks=script_args.num_blanks
    )
    config = PretrainConfig(
        steps=script_args.pretrain_steps,
        batch_size=script_args.pretrain_batch_size,
        learning_rate=script_args.pretrain_learning_rate,
        corruption=script_args.pretrain_corruption,
        corrupt_prob=script_args.pretrain_corrupt_prob,
        budget_multiples=tuple(script_args.pretrain_budget_multiples),
        completion_length=training_args.max_completion_length,
        seed=training_args.seed,
    )
    result = pretrain_base(model, tokenizer, pairs, config)
    return model, tokenizer, {"pretrain_seconds": result.seconds, "pretrain_final_loss": result.losses[-1]}


def main(script_args: SudokuScriptArguments, training_args: DAMConfig, model_args: ModelConfig) -> dict:
    start = time.perf_counter()
    if script_args.num_threads:
        torch.set_num_threads(script_args.num_threads)
    tiny = model_args.model_name_or_path is None
    style = script_args.prompt_style or ("compact" if tiny else "d1")
    train_dataset = generate_sudoku_dataset(
        script_args.num_train_puzzles,
        seed=script_args.puzzle_seed,
        num_blanks=script_args.num_blanks,
        split="train",
        prompt_style=style,
    )
    eval_dataset = generate_sudoku_dataset(
        script_args.num_eval_puzzles,
        seed=script_args.puzzle_seed + 1,
        num_blanks=script_args.num_blanks,
        split="test",
        prompt_style=style,
    )
    format_reward = sudoku_compact_format_reward if style == "compact" else sudoku_format_reward
    reward_funcs = [sudoku_reward, format_reward]
    summary: dict = {}

    if tiny:
        model, tokenizer, summary["pretraining"] = build_tiny_base(script_args, training_args)
    else:
        tokenizer = load_tokenizer(
            model_args.model_name_or_path,
            revision=model_args.model_revision,
            trust_remote_code=training_args.trust_remote_code,
            padding_side="left",
        )
        model_init_kwargs = {
            "revision": model_args.model_revision,
            "attn_implementation": model_args.attn_implementation,
            "dtype": model_args.dtype,
        }
        quantization_config = get_quantization_config(model_args)
        if quantization_config is not None:
            model_init_kwargs["quantization_config"] = quantization_config
        training_args.model_init_kwargs = {**model_init_kwargs, **(training_args.model_init_kwargs or {})}
        model = model_args.model_name_or_path

    budget = training_args.max_completion_length
    block_length = script_args.eval_block_length or (budget if tiny else 32)
    callbacks = []
    heldout = None
    if script_args.heldout_eval_steps and training_args.world_size == 1:
        heldout = SudokuAccuracyCallback(
            tokenizer, eval_dataset, budget, script_args.heldout_eval_steps, block_length=block_length
        )
        callbacks.append(heldout)
    trainer = DAMTrainer(
        model=model,
        reward_funcs=reward_funcs,
        args=training_args,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        callbacks=callbacks,
        peft_config=get_peft_config(model_args),
    )
    train_start = time.perf_counter()
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    summary["dam_seconds"] = time.perf_counter() - train_start
    trainer.save_model(training_args.output_dir)
    trainer.accelerator.print(f"Model and tokenizer saved to {training_args.output_dir}")

    # Held-out evaluation of the base (reference) and the fine-tuned model at 1x, 2x, 4x the training budget.
    eval_start = time.perf_counter()
    budgets = [budget * m for m in script_args.eval_budget_multiples]
    sampled_budgets = [budget * m for m in script_args.eval_sampled_multiples] if script_args.eval_sampled else []
    common = {
        "block_length": block_length,
        "batch_size": script_args.eval_batch_size,
        "seed": training_args.seed,
        "tokens_per_step": training_args.tokens_per_step,
        "accelerator": trainer.accelerator,
    }

    def evaluate(model, disable_adapter=False):
        scores = evaluate_budgets(model, tokenizer, eval_dataset, budgets, disable_adapter=disable_adapter, **common)
        if sampled_budgets:
            scores |= evaluate_budgets(
                model,
                tokenizer,
                eval_dataset,
                sampled_budgets,
                decoders=("ctmc",),
                disable_adapter=disable_adapter,
                **common,
            )
        return scores

    results = {}
    optimum = None
    with base_for_generation(trainer) as (base, disable_adapter):
        results["base"] = evaluate(base, disable_adapter)
        if script_args.optimum_num_samples:
            optimum = estimate_optimum_accuracy(
                base,
                tokenizer,
                eval_dataset[: script_args.optimum_num_puzzles],
                budget,
                training_args.beta,
                trainer.reward_funcs,
                training_args.reward_weights,
                num_samples=script_args.optimum_num_samples,
                batch_size=script_args.eval_batch_size,
                seed=training_args.seed,
                disable_adapter=disable_adapter,
                tokens_per_step=training_args.tokens_per_step,
                accelerator=trainer.accelerator,
            )
    with policy_for_generation(trainer) as (policy, _):
        results["finetuned"] = evaluate(policy)
    summary["eval_seconds"] = time.perf_counter() - eval_start
    summary["total_seconds"] = time.perf_counter() - start

    if trainer.accelerator.is_main_process:
        trainer.accelerator.print(format_results_table(results, budget, optimum, training_args.beta))
        summary.update(
            {
                "results": {
                    model_name: {
                        decoder: {str(b): scores.as_dict() for b, scores in per_budget.items()}
                        for decoder, per_budget in per_decoder.items()
                    }
                    for model_name, per_decoder in results.items()
                },
                "optimum": None if optimum is None else asdict(optimum) | {"per_puzzle_cell_accuracy": None},
                "heldout_history": heldout.history if heldout is not None else [],
                "beta": training_args.beta,
                "script_args": asdict(script_args),
            }
        )
        with open(os.path.join(training_args.output_dir, "results.json"), "w") as f:
            json.dump(summary, f, indent=2)
        figure = plot_training(
            trainer.state.log_history,
            heldout.history if heldout is not None else [],
            os.path.join(training_args.output_dir, "training.png"),
            optimum_cell_accuracy=optimum.cell_accuracy if optimum is not None else None,
        )
        trainer.accelerator.print(
            f"Results: {os.path.join(training_args.output_dir, 'results.json')}; plot: {figure}; "
            f"total {summary['total_seconds'] / 60:.1f} min"
        )
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name="procedural 4x4 Sudoku (trl_dam.tasks.sudoku)")
    return summary


if __name__ == "__main__":
    main(*parse_args())
