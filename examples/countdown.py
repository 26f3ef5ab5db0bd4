# Copyright 2026 The trl_dam developers. Apache-2.0.
"""Reward fine-tuning of LLaDA-8B-Instruct on Countdown with Discrete Adjoint Matching (DAM), then d1's evaluation.

The paper's setup (App. C.2): LoRA r 128 / alpha 64, K = 12 rollouts per training state, generation length 128,
4000 optimiser steps, d1's Countdown reward (1.0 for a valid equation hitting the target with each number once,
0.1 for the right numbers and a wrong value). Training problems are 3-number Countdown problems generated offline
(`trl_dam.tasks.countdown`: numbers 1-100, every problem solvable; pass `--max_train_samples` to change how many);
the held-out set is 256 generated problems never in training, as d1's 256-problem test file. On 8 GPUs:

    accelerate launch --config_file examples/accelerate_configs/deepspeed_zero2.yaml examples/countdown.py \\
        --trust_remote_code --output_dir outputs/llada-countdown-dam

`--trust_remote_code` lets the LLaDA checkpoint's own modeling code run (it is off unless passed).

After training it evaluates the base (adapters disabled) and the fine-tuned model with d1's protocol at 128, 256 and
512 tokens and prints the paper-shaped table (`output_dir/eval_results.json`). Any `DAMConfig`, `ModelConfig`,
`DAMScriptArguments` or `TaskEvaluationArguments` field is a flag (or a key of a `--config` YAML file), e.g.
`--model_name_or_path path/to/model` for another masked diffusion LM, `--push_to_hub` to publish the adapter.

There is no embedded CPU default: a base that can write Countdown equations needs far more pre-training than the
Sudoku demo's minutes (see `examples/sudoku.py` for the tiny end-to-end run).
"""

from trl_dam.scripts.task_example import LLADA_DAM_RECIPE, run_task_example

COUNTDOWN_DEFAULTS = {
    **LLADA_DAM_RECIPE,
    "output_dir": "outputs/llada-countdown-dam",
    "max_steps": 4000,
}


def main(args: list[str] | None = None) -> dict:
    return run_task_example("countdown", COUNTDOWN_DEFAULTS, args)


if __name__ == "__main__":
    main()
