# Copyright 2026 The trl_dam developers. Apache-2.0.
"""Reward fine-tuning of LLaDA-8B-Instruct on GSM8K with Discrete Adjoint Matching (DAM), then d1's evaluation.

The paper's setup (App. C.2): LoRA r 128 / alpha 64, K = 12 rollouts per training state, generation length 128,
3000 optimiser steps, d1's five GSM8K rewards (XML count, soft and strict format, integer answer, correctness; at
most 4.0). It trains on `openai/gsm8k` (train, 7473 problems) and evaluates on its 1319 test problems with d1's
protocol at 128, 256 and 512 tokens, base (adapters disabled) beside fine-tuned. On 8 GPUs:

    accelerate launch --config_file examples/accelerate_configs/deepspeed_zero2.yaml examples/gsm8k.py \\
        --trust_remote_code --output_dir outputs/llada-gsm8k-dam

`--trust_remote_code` lets the LLaDA checkpoint's own modeling code run (it is off unless passed).

`--dataset_name` takes a local copy of the hub dataset (a folder with its README and files) instead of the hub id.
Any `DAMConfig`, `ModelConfig`, `DAMScriptArguments` or `TaskEvaluationArguments` field is a flag (or a key of a
`--config` YAML file), e.g. `--eval_generation_lengths 128` for a quicker evaluation or `--push_to_hub`.

There is no embedded CPU default: GSM8K needs a model that already reasons in language, which no model trained
in minutes on a CPU does (see `examples/sudoku.py` for the tiny end-to-end run).
"""

from trl_dam.scripts.task_example import LLADA_DAM_RECIPE, run_task_example

GSM8K_DEFAULTS = {
    **LLADA_DAM_RECIPE,
    "output_dir": "outputs/llada-gsm8k-dam",
    "max_steps": 3000,
}


def main(args: list[str] | None = None) -> dict:
    return run_task_example("gsm8k", GSM8K_DEFAULTS, args)


if __name__ == "__main__":
    main()
