"""Evaluate masked diffusion LMs on d1's tasks at generation lengths 128, 256 and 512: the `trl-dam-evaluate`
console script, which prints the DAM paper's table.

d1's protocol: evaluation prompts (`--prompt_style d1_eval`) with `"<reasoning>"` prefilled after the chat template,
LLaDA low-confidence remasking at temperature 0 in blocks of 32 tokens, length / 2 denoiser calls (two tokens per
call); scores from the `evaluate` metric modules of `trl_dam.metrics`. Every model is a hub id, a local folder, or
a LoRA adapter folder (loaded on its base, unmerged, as d1 does):

```bash
accelerate launch -m trl_dam.scripts.evaluate \\
    --model_name_or_path GSAI-ML/LLaDA-8B-Instruct outputs/sudoku-dam --trust_remote_code \\
    --model_labels LLaDA-8B-Instruct "+ DAM" --tasks sudoku countdown gsm8k math500 --dtype bfloat16

# the tiny model of the embedded Sudoku demo (after `python examples/sudoku.py`), in its compact format and at
# 1x, 2x and 4x its 16-token training budget
trl-dam-evaluate --model_name_or_path outputs/sudoku-dam-tiny --tasks sudoku \\
    --prompt_style compact --generation_lengths 16 32 64 --block_length 16 --batch_size 256
```

It prints one row per model and one column per task and length (the task's score in %), and with `--output_file`
writes the scores, the settings and every completion as JSON. Sudoku and Countdown problems are generated unless
`--test_files` names fixed sets in d1's layouts, e.g. `--test_files sudoku=4x4_test_sudoku.csv
countdown=countdown_cd3_test.jsonl` (d1's files; hub ids work too).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from accelerate import PartialState
from trl import TrlParser

from trl_dam.evaluation import (
    D1_BLOCK_LENGTH,
    D1_GENERATION_LENGTHS,
    TASK_EVALUATIONS,
    check_decoding_settings,
    evaluate_generation_lengths,
    format_length_table,
    load_eval_dataset,
)
from trl_dam.models import is_adapter_folder, load_diffusion_lm, load_tokenizer


@dataclass
class EvaluateScriptArguments:
    """Models, tasks and decoding settings of the evaluation (defaults: d1's protocol)."""

    model_name_or_path: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Models to evaluate: hub ids, local folders, or LoRA adapter folders (loaded on their base)."
        },
    )
    model_labels: list[str] | None = field(
        default=None, metadata={"help": "Row labels of the table, one per model (default: the paths)."}
    )
    tasks: list[str] = field(
        default_factory=lambda: ["sudoku"],
        metadata={"help": "Tasks to evaluate.", "choices": list(TASK_EVALUATIONS)},
    )
    generation_lengths: list[int] = field(
        default_factory=lambda: list(D1_GENERATION_LENGTHS),
        metadata={"help": "Completion lengths in tokens (d1: 128 256 512)."},
    )
    block_length: int = field(
        default=D1_BLOCK_LENGTH, metadata={"help": "Block size of the low-confidence decoder (d1: 32)."}
    )
    tokens_per_step: int = field(
        default=2, metadata={"help": "Tokens committed per denoiser call: diffusion steps = length / this (d1: 2)."}
    )
    prompt_style: str = field(
        default="d1_eval",
        metadata={"help": "'d1_eval' (d1's evaluation prompts), 'd1' (its training prompts) or 'compact' (tiny)."},
    )
    prefill: str | None = field(
        default=None,
        metadata={"help": "Text forced at the start of each completion (default: '<reasoning>' for chat prompts)."},
    )
    num_problems: int | None = field(
        default=None,
        metadata={"help": "Generated tasks: problems to generate (256); GSM8K/MATH500: keep the first N (all)."},
    )
    puzzle_seed: int = field(
        default=1, metadata={"help": "Seed of the generated Sudoku/Countdown problems (1: the demo's held-out set)."}
    )
    dataset_name: str | None = field(
        default=None,
        metadata={"help": "GSM8K/MATH500 source: a hub id, a local folder or a data file (default: the hub set)."},
    )
    test_files: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Fixed test sets as TASK=SOURCE (a data file, folder or hub id) in d1's layouts, e.g. "
            "sudoku=4x4_test_sudoku.csv countdown=countdown_cd3_test.jsonl (default: generated Sudoku/Countdown)."
        },
    )
    batch_size: int = field(default=8, metadata={"help": "Sequences per decoder call (d1: 8; 4 at 512 tokens)."})
    dtype: str = field(
        default="auto", metadata={"help": "Weight dtype: 'auto' (the checkpoint's), 'bfloat16', 'float32', ..."}
    )
    trust_remote_code: bool = field(
        default=False,
        metadata={"help": "Run the checkpoints' own model and tokenizer code (LLaDA and Dream need it)."},
    )
    output_file: str | None = field(
        default=None, metadata={"help": "JSON file for the scores, the settings and every completion."}
    )

    def __post_init__(self):
        # Checked here, before any model or data is loaded, so a typo costs seconds, not a whole evaluation.
        check_decoding_settings(
            self.generation_lengths,
            block_length=self.block_length,
            tokens_per_step=self.tokens_per_step,
            batch_size=self.batch_size,
        )
        if self.num_problems is not None and self.num_problems < 1:
            raise ValueError(f"`num_problems` must be None or >= 1, got {self.num_problems}.")


def check_output_file(path: str) -> None:
    """Fail now, not after the evaluation, when the scores and completions could not be written to ``path``: create
    its folder and open it for appending (a file that did not exist is removed again)."""
    existed = os.path.exists(path)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "a"):
            pass
    except OSError as err:
        raise ValueError(f"--output_file {path!r} cannot be written: {err}") from err
    if not existed:
        os.remove(path)


def load_model_and_tokenizer(path: str, args: EvaluateScriptArguments):
    """The model (a `PeftModel` for an adapter folder) and its tokenizer (the adapter folder's, else its base's)."""
    model = load_diffusion_lm(path, torch_dtype=args.dtype, trust_remote_code=args.trust_remote_code)
    tokenizer_path = path
    if is_adapter_folder(path) and not os.path.isfile(os.path.join(path, "tokenizer_config.json")):
        tokenizer_path = model.peft_config["default"].base_model_name_or_path
    tokenizer = load_tokenizer(tokenizer_path, trust_remote_code=args.trust_remote_code)
    return model, tokenizer


def main(args: EvaluateScriptArguments) -> dict:
    """Evaluate every model on every task at every length; print the table, write `--output_file`, return the
    summary (`settings`, `seconds` per model, and `results[label][task][length]` with the metric's scores)."""
    if not args.model_name_or_path:
        raise ValueError("Pass --model_name_or_path with at least one model (hub id, folder or adapter folder).")
    labels = args.model_labels or args.model_name_or_path
    if len(labels) != len(args.model_name_or_path):
        raise ValueError(
            f"{len(labels)} --model_labels for {len(args.model_name_or_path)} models: give one label per model."
        )
    test_files = dict(entry.partition("=")[::2] for entry in args.test_files)
    unknown = [entry for entry in args.test_files if entry.partition("=")[0] not in args.tasks or "=" not in entry]
    if unknown:
        raise ValueError(f"--test_files {unknown}: give TASK=SOURCE with TASK one of the --tasks {args.tasks}.")
    state = PartialState()
    if args.output_file and state.is_main_process:
        check_output_file(args.output_file)
    datasets_by_task = {
        task: load_eval_dataset(
            task,
            args.num_problems,
            prompt_style=args.prompt_style,
            seed=args.puzzle_seed,
            dataset_name=test_files.get(task, None if task in ("sudoku", "countdown") else args.dataset_name),
        )
        for task in args.tasks
    }
    results: dict = {}
    seconds: dict[str, float] = {}
    for label, path in zip(labels, args.model_name_or_path, strict=True):
        start = time.perf_counter()
        model, tokenizer = load_model_and_tokenizer(path, args)
        model.to(state.device)
        results[label] = {
            task: evaluate_generation_lengths(
                model,
                tokenizer,
                task,
                dataset,
                args.generation_lengths,
                block_length=args.block_length,
                tokens_per_step=args.tokens_per_step,
                prefill=args.prefill,
                batch_size=args.batch_size,
                accelerator=state,
                progress=lambda message, label=label: state.print(f"[{label}] {message}"),
            )
            for task, dataset in datasets_by_task.items()
        }
        seconds[label] = time.perf_counter() - start
        del model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    state.print(format_length_table(results))
    summary = {
        "settings": asdict(args),
        "seconds": seconds,
        "results": {
            label: {
                task: {
                    str(length): {"scores": r.scores, "main_score": r.main_score, "seconds": r.seconds}
                    for length, r in per_length.items()
                }
                for task, per_length in per_task.items()
            }
            for label, per_task in results.items()
        },
    }
    if args.output_file and state.is_main_process:
        completions = {
            label: {
                task: {str(length): r.completions for length, r in per_length.items()}
                for task, per_length in per_task.items()
            }
            for label, per_task in results.items()
        }
        with open(args.output_file, "w") as f:
            json.dump(summary | {"completions": completions}, f, indent=2)
        state.print(f"Scores and completions written to {args.output_file}")
    return summary


def make_parser() -> TrlParser:
    """`TrlParser((EvaluateScriptArguments,))`."""
    return TrlParser((EvaluateScriptArguments,))


def cli(args: list[str] | None = None) -> None:
    """The console script: parse `args` (default: the command line) and run :func:`main`. It returns nothing, since
    the console-script wrapper exits with what it returns."""
    (script_args,) = make_parser().parse_args_and_config(sys.argv[1:] if args is None else args)
    main(script_args)


if __name__ == "__main__":
    cli()
