"""Fine-tune a masked diffusion LM with Discrete Adjoint Matching: the `trl-dam` console script.

It follows `trl/scripts/grpo.py` (`make_parser()` + `main(...)`, `TrlParser`, `ModelConfig`, `get_peft_config`), so
every [`DAMConfig`] and `ModelConfig` field is a flag, and `--config recipe.yaml` sets defaults from a YAML file.

Examples:

```bash
# 4x4 Sudoku (puzzles generated offline, d1's rewards) with LoRA on 8 GPUs under DeepSpeed ZeRO-2
accelerate launch --config_file examples/accelerate_configs/deepspeed_zero2.yaml -m trl_dam.scripts.dam \\
    --model_name_or_path GSAI-ML/LLaDA-8B-Instruct --trust_remote_code --dtype bfloat16 --task sudoku \\
    --output_dir llada-sudoku-dam \\
    --use_peft --lora_target_modules q_proj k_proj v_proj attn_out ff_proj up_proj \\
    --beta 0.05 --num_generations 8 --per_device_train_batch_size 8 --max_completion_length 256

# Your prompts (a local .jsonl/.csv/.parquet file, a folder or a hub id with a "prompt" column), rewards by name
# (from `trl_dam.rewards`), by import path (`my_rewards.length_reward`, from the working directory) or reward models
trl-dam --model_name_or_path path/to/model --dataset_name data/prompts.jsonl \\
    --reward_funcs strict_format_reward my_rewards.length_reward --output_dir my-dam
```
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from dataclasses import dataclass, field

from trl import ModelConfig, ScriptArguments

from trl_dam.rewards.registry import TASK_NAMES

#: Default sizes of the generated task datasets (`--task sudoku|countdown`).
GENERATED_TRAIN_SIZE = 10_000
GENERATED_EVAL_SIZE = 256


@dataclass
class DAMScriptArguments(ScriptArguments):
    """
    Script arguments for the DAM training script (besides TRL's `dataset_name`, `dataset_config`,
    `dataset_train_split`, `dataset_test_split`).

    Args:
        task (`str`, *optional*):
            A d1 task that builds the dataset and the rewards: `"sudoku"` and `"countdown"` generate their problems
            offline; `"gsm8k"` and `"math500"` load theirs (from `dataset_name` if given, a hub id or local files).
        prompt_style (`str`, *optional*, defaults to `"d1"`):
            Prompt style of the task (`"d1"` or `"compact"`); the Sudoku format reward follows it.
        reward_funcs (`list[str]`, *optional*):
            Reward functions: a name from `trl_dam.rewards` (e.g. `"sudoku_reward"`), a task name (its d1 rewards),
            a dotted import path (`"my_module.my_reward"`, importable from the working directory), or a reward
            model (a hub id `org/name` or a local folder). Replaces the task's rewards when both are given.
        max_train_samples (`int`, *optional*):
            Generated tasks: number of problems (10000). Loaded datasets: keep the first N rows (all by default).
        max_eval_samples (`int`, *optional*):
            As `max_train_samples`, for the evaluation set (256 generated problems).
    """

    task: str | None = field(
        default=None,
        metadata={"help": "d1 task building the dataset and rewards.", "choices": list(TASK_NAMES)},
    )
    prompt_style: str = field(default="d1", metadata={"help": "Task prompt style: 'd1' or 'compact'."})
    reward_funcs: list[str] | None = field(
        default=None,
        metadata={
            "help": "Reward functions: names from trl_dam.rewards, task names, dotted import paths, or reward model "
            "ids / folders. Replaces the task's rewards when given."
        },
    )
    max_train_samples: int | None = field(
        default=None,
        metadata={"help": "Generated tasks: number of problems (10000); loaded datasets: keep the first N rows."},
    )
    max_eval_samples: int | None = field(
        default=None,
        metadata={"help": "Generated tasks: number of problems (256); loaded datasets: keep the first N rows."},
    )


@dataclass
class DAMModelConfig(ModelConfig):
    """TRL's `ModelConfig` with a LoRA task type that suits masked diffusion LMs.

    Args:
        lora_task_type (`str`, *optional*):
            PEFT task type. `None` wraps the model in a plain `PeftModel`; TRL's default `"CAUSAL_LM"` needs
            `prepare_inputs_for_generation`, which LLaDA, Dream and masked LMs do not have.
    """

    lora_task_type: str | None = field(
        default=None,
        metadata={"help": "PEFT task type; None (a plain PeftModel) suits masked diffusion LMs."},
    )


def reward_registry() -> dict:
    """The reward functions of `trl_dam.rewards`, by name."""
    from trl_dam import rewards

    return {name: getattr(rewards, name) for name in rewards.__all__ if name.endswith("_reward")}


def resolve_reward_funcs(names: list[str], prompt_style: str = "d1") -> list:
    """Callables or reward-model ids for `--reward_funcs` (see `DAMScriptArguments.reward_funcs`)."""
    from trl_dam.rewards import get_reward_funcs

    registry = reward_registry()
    funcs = []
    for name in names:
        if name in registry:
            funcs.append(registry[name])
        elif name in TASK_NAMES or name == "math":
            funcs.extend(get_reward_funcs(name, prompt_style))
        elif os.path.isdir(name) or "/" in name:
            funcs.append(name)  # a reward model: the trainer loads it as a sequence classifier
        elif "." in name:
            module_path, func_name = name.rsplit(".", 1)
            sys.path.insert(0, os.getcwd())
            funcs.append(getattr(importlib.import_module(module_path), func_name))
        else:
            raise ValueError(
                f"Unknown reward function {name!r}: expected one of {sorted(registry)}, a task ({list(TASK_NAMES)}), "
                "a dotted import path or a reward model id / folder."
            )
    return funcs


def _limit(dataset, size: int | None):
    return dataset if size is None or size >= len(dataset) else dataset.select(range(size))


def _source(script_args, default_path: str, default_name: str | None = None) -> dict:
    """`path` / `name` / `data_files` for the task loaders: `dataset_name` may be a hub id, a folder or a file."""
    path = script_args.dataset_name
    if path is not None and os.path.isfile(path):
        return {"path": path, "name": None, "data_files": path}
    return {"path": path or default_path, "name": script_args.dataset_config or default_name, "data_files": None}


def _load_task(script_args, seed: int, with_eval: bool):
    """``(train, eval or None)`` of a `--task`."""
    from trl_dam import tasks
    from trl_dam.tasks.gsm8k import GSM8K_HUB_ID
    from trl_dam.tasks.math500 import MATH500_HUB_ID, MATH_TRAIN_HUB_ID

    task, style = script_args.task, script_args.prompt_style
    if task in ("sudoku", "countdown"):
        generate = tasks.generate_sudoku_dataset if task == "sudoku" else tasks.generate_countdown_dataset
        train_size = script_args.max_train_samples or GENERATED_TRAIN_SIZE
        eval_size = script_args.max_eval_samples or GENERATED_EVAL_SIZE
        train = generate(train_size, seed=seed, split="train", prompt_style=style)
        return train, generate(eval_size, seed=seed, split="test", prompt_style=style) if with_eval else None
    if task == "gsm8k":
        source = _source(script_args, GSM8K_HUB_ID, "main")
        train = tasks.load_gsm8k(script_args.dataset_train_split, prompt_style=style, **source)
        test = tasks.load_gsm8k(script_args.dataset_test_split, prompt_style=style, **source) if with_eval else None
    else:  # math500: d1 trains on MATH problems outside MATH500 and evaluates on MATH500
        source = _source(script_args, MATH_TRAIN_HUB_ID)
        train = tasks.load_math500(script_args.dataset_train_split, prompt_style=style, **source)
        test = tasks.load_math500("test", path=MATH500_HUB_ID, prompt_style=style) if with_eval else None
    return train, test


def card_dataset_name(script_args) -> str | None:
    """The dataset named on the model card: `dataset_name`, else the hub id a task loads (generated tasks: none)."""
    from trl_dam.tasks.gsm8k import GSM8K_HUB_ID
    from trl_dam.tasks.math500 import MATH_TRAIN_HUB_ID

    return script_args.dataset_name or {"gsm8k": GSM8K_HUB_ID, "math500": MATH_TRAIN_HUB_ID}.get(script_args.task)


def load_datasets(script_args, training_args):
    """``(train_dataset, eval_dataset or None)`` from `--task` or `--dataset_name`."""
    from datasets import load_dataset

    from trl_dam.tasks import load_split

    with_eval = training_args.eval_strategy != "no"
    if script_args.dataset_streaming:
        raise ValueError("DAMTrainer needs a map-style dataset: --dataset_streaming is not supported.")
    if script_args.task is not None:
        train, test = _load_task(script_args, training_args.seed, with_eval)
    elif script_args.dataset_name is None:
        raise ValueError("Pass --dataset_name (a hub id, a folder or a data file) or --task.")
    elif os.path.isfile(script_args.dataset_name):
        if with_eval:
            raise ValueError(
                "A single data file holds one split: pass a folder or hub id with a test split, or --eval_strategy no."
            )
        name = script_args.dataset_name
        train, test = load_split(name, script_args.dataset_train_split, data_files=name), None
    else:
        dataset = load_dataset(script_args.dataset_name, name=script_args.dataset_config)
        train = dataset[script_args.dataset_train_split]
        test = dataset[script_args.dataset_test_split] if with_eval else None
    if not script_args.task or script_args.task in ("gsm8k", "math500"):
        train = _limit(train, script_args.max_train_samples)
        test = _limit(test, script_args.max_eval_samples) if test is not None else None
    return train, test


def make_trainer(script_args, training_args, model_args):
    """The [`DAMTrainer`] that `main` trains, built from the parsed arguments."""
    from trl import get_peft_config, get_quantization_config

    from trl_dam.rewards import get_reward_funcs
    from trl_dam.trainers import DAMTrainer

    if model_args.model_name_or_path is None:
        raise ValueError("Pass --model_name_or_path (a hub id or a local folder).")
    model_init_kwargs = {
        "revision": model_args.model_revision,
        "attn_implementation": model_args.attn_implementation,
        "dtype": model_args.dtype,
    }
    model_init_kwargs.update(training_args.model_init_kwargs or {})
    training_args.model_init_kwargs = model_init_kwargs

    if script_args.reward_funcs:
        reward_funcs = resolve_reward_funcs(script_args.reward_funcs, script_args.prompt_style)
    elif script_args.task is not None:
        reward_funcs = get_reward_funcs(script_args.task, script_args.prompt_style)
    else:
        raise ValueError("Pass --reward_funcs (or --task, which brings its rewards).")
    train_dataset, eval_dataset = load_datasets(script_args, training_args)
    return DAMTrainer(
        model=model_args.model_name_or_path,
        reward_funcs=reward_funcs,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        peft_config=get_peft_config(model_args),
        quantization_config=get_quantization_config(model_args),  # --load_in_4bit / --load_in_8bit
    )


def save_or_push(trainer, script_args, training_args) -> None:
    """Save the model and its card to `output_dir`, and push them to the hub with `--push_to_hub`."""
    card = {"dataset_name": card_dataset_name(script_args), "tags": [script_args.task] if script_args.task else None}
    trainer.save_model(training_args.output_dir)
    if training_args.push_to_hub:
        trainer.push_to_hub(**card)
        trainer.accelerator.print(f"Model pushed to https://huggingface.co/{trainer.hub_model_id}.")
    else:
        trainer.create_model_card(**card)
        trainer.accelerator.print(f"Model and model card saved to {training_args.output_dir}.")


def main(script_args=None, training_args=None, model_args=None):
    """Train, save the model with its card to `output_dir`, and push it when `--push_to_hub` is set.

    Called without arguments (the `trl-dam` console script) it parses the command line.
    """
    if script_args is None:
        script_args, training_args, model_args = make_parser().parse_args_and_config()
    trainer = make_trainer(script_args, training_args, model_args)
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.accelerator.print("Training completed.")

    save_or_push(trainer, script_args, training_args)
    if hasattr(trainer, "end"):  # transformers >= 5.18: finish the trackers and destroy the process group
        trainer.end()
    return trainer


def cli() -> None:
    """The `trl-dam` console script: :func:`main` on the command line. It returns nothing, since the console-script
    wrapper exits with what it returns (a trainer would be an error status)."""
    main()


def make_parser(subparsers: argparse._SubParsersAction | None = None, prog: str | None = None):
    """`TrlParser((DAMScriptArguments, DAMConfig, DAMModelConfig))`, or a `dam` sub-command of `subparsers`."""
    from trl import TrlParser

    from trl_dam.trainers import DAMConfig

    dataclass_types = (DAMScriptArguments, DAMConfig, DAMModelConfig)
    if subparsers is not None:
        return subparsers.add_parser("dam", help="Run the DAM training script", dataclass_types=dataclass_types)
    return TrlParser(dataclass_types, prog=prog)


if __name__ == "__main__":
    main()
