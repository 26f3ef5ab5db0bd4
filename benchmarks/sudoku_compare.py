"""DAM vs diffu-GRPO (D1) on 4x4 Sudoku from the same tiny pre-trained base, plus base and SVDD decoding.

From the embedded demo's base (`examples/sudoku.py`: the same builder, pre-training and held-out puzzles), this
fine-tunes the base with `DAMTrainer` and with `DiffuGRPOTrainer` under the same budget of reward-function calls
(completions scored), with the same number of hyper-parameter trials per method, and reports for each:

* held-out blank-cell accuracy (d1's Sudoku metric) and puzzles solved, greedy low-confidence decoding (d1's
  protocol: temperature 0, two tokens per call) at the training budget of 16 tokens;
* reward calls and training wall time (evaluation time excluded), and held-out accuracy over time;

and for the base at test time: plain greedy decoding and SVDD decoding (soft value-based decoding with the training
reward, posterior-mean value, CTMC proposals). Trials are selected by accuracy on validation puzzles drawn from the
training solution grids; the held-out puzzles use solution grids never seen in training. diffu-GRPO follows d1's
Sudoku recipe (6 generations, mu = 8, epsilon 0.5, beta 0.04, p_mask_prompt 0.15, temperature 0.9, length/2 steps,
AdamW betas (0.9, 0.99), weight decay 0.1, gradient clip 0.2); DAM follows the demo's recipe. Both get three learning
rate / speed trials, listed in the output.

    python benchmarks/sudoku_compare.py                     # full run (about 30 minutes on 2 CPU cores)
    python benchmarks/sudoku_compare.py --quick             # smoke run (under a minute)
    python benchmarks/sudoku_compare.py --json outputs/sudoku_compare.json
    python benchmarks/sudoku_compare.py --methods dam --dam-targets first_jump all_positions all_jumps  # DAM only

The pre-trained base (about 8 of those minutes) is cached in `--base-dir`, keyed by its settings, so re-runs skip it.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import importlib.util
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer, TrainerCallback
from transformers.trainer_callback import PrinterCallback

from trl_dam.core import svdd_decode
from trl_dam.evaluation import completion_texts, decode_completions, eos_token_ids
from trl_dam.rewards.sudoku import sudoku_compact_format_reward, sudoku_reward
from trl_dam.sudoku_demo import score_completions
from trl_dam.tasks.sudoku import generate_sudoku_dataset
from trl_dam.trainers import DAMConfig, DAMTrainer, DiffuGRPOConfig, DiffuGRPOTrainer
from trl_dam.trainers.dam_config import DAM_TARGETS

ROOT = Path(__file__).resolve().parent.parent
BUDGET = 16  # completion tokens: the 16 digits


def load_example():
    """`examples/sudoku.py` as a module: its base builder, script defaults and DAM defaults are the demo's."""
    spec = importlib.util.spec_from_file_location("sudoku_example", ROOT / "examples" / "sudoku.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["sudoku_example"] = module
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------- budget and tracking


class RewardCounter:
    """Wraps the reward functions and counts the completions scored (one reward-function call per completion)."""

    def __init__(self):
        self.calls = 0

    def funcs(self):
        def sudoku(prompts, completions, **kwargs):
            self.calls += len(completions)
            return sudoku_reward(prompts, completions, **kwargs)

        def compact_format(prompts, completions, **kwargs):
            return sudoku_compact_format_reward(prompts, completions, **kwargs)

        return [sudoku, compact_format]


class BudgetAndAccuracy(TrainerCallback):
    """Stops training when the reward-call budget is spent and records held-out accuracy over wall time."""

    def __init__(self, counter: RewardCounter, budget_calls: int, tokenizer, rows, eval_every_calls: int):
        self.counter, self.budget_calls, self.tokenizer, self.rows = counter, budget_calls, tokenizer, rows
        self.eval_every_calls = eval_every_calls
        self.history: list[dict] = []
        self.start = 0.0
        self.eval_seconds = 0.0
        self._next_eval = 0

    def train_seconds(self) -> float:
        return time.perf_counter() - self.start - self.eval_seconds

    def _evaluate(self, model, step: int) -> None:
        seconds = self.train_seconds()
        begin = time.perf_counter()
        scores = evaluate(model, self.tokenizer, self.rows)
        self.eval_seconds += time.perf_counter() - begin
        self.history.append({"step": step, "seconds": seconds, "reward_calls": self.counter.calls, **scores})
        self._next_eval = self.counter.calls + self.eval_every_calls

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.start = time.perf_counter()
        self._evaluate(model, 0)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        done = self.counter.calls >= self.budget_calls
        if done or self.counter.calls >= self._next_eval:
            self._evaluate(model, state.global_step)
        if done:
            control.should_training_stop = True


def evaluate(model, tokenizer, rows) -> dict[str, float]:
    texts = decode_completions(model, tokenizer, rows["prompt"], BUDGET, block_length=BUDGET)
    return score_completions(texts, rows["puzzle"], rows["solution"]).as_dict()


# ---------------------------------------------------------------------------------------------- methods


@dataclass
class Trial:
    method: str
    name: str
    overrides: dict
    result: dict = field(default_factory=dict)


#: --quick shrinks the batches (a smoke run of the same code paths, not a comparison).
QUICK_DAM = {"per_device_train_batch_size": 32}  # 4 training states x K = 8
QUICK_GRPO = {"per_device_train_batch_size": 24, "num_iterations": 2}  # 4 prompts x 6 generations


#: DAM's trials: the demo's recipe, then a higher learning rate, then two tokens per denoiser call (half the rollout
#: cost). Each runs once per `--dam-targets` entry.
DAM_RECIPES = {
    "demo recipe (lr 3e-4)": {"learning_rate": 3e-4},
    "lr 1e-3": {"learning_rate": 1e-3},
    "lr 3e-4, 2 tokens/step": {"learning_rate": 3e-4, "diffusion_steps": BUDGET // 2},
}


def dam_trials(quick: bool, targets=("first_jump",), names=None) -> list[Trial]:
    """One trial per (target, recipe); rows are labelled `DAM <target>`, and each target gets its own selection."""
    recipes = {name: DAM_RECIPES[name] for name in names or DAM_RECIPES}
    if quick:
        recipes = {"quick": {**DAM_RECIPES["demo recipe (lr 3e-4)"], **QUICK_DAM}}
    return [
        Trial(f"DAM {target}", name, {**overrides, "dam_target": target})
        for target in targets
        for name, overrides in recipes.items()
    ]


def grpo_trials(quick: bool) -> list[Trial]:
    # d1's recipe with three learning rates (d1's 3e-6 is for LoRA on an 8B model; the tiny model needs its own).
    trials = [Trial("diffu-GRPO", f"d1 recipe, lr {lr:g}", {"learning_rate": lr}) for lr in (1e-4, 3e-4, 1e-3)]
    return [Trial("diffu-GRPO", "quick", {**trials[1].overrides, **QUICK_GRPO})] if quick else trials


def dam_args(example, output_dir: str, seed: int, overrides: dict) -> DAMConfig:
    kwargs = {**example.TINY_DEMO_DEFAULTS, "output_dir": output_dir, "seed": seed, "max_steps": 100_000}
    kwargs.update(logging_steps=10, disable_tqdm=True, use_cpu=True, **overrides)
    return DAMConfig(**kwargs)


def grpo_args(output_dir: str, seed: int, overrides: dict) -> DiffuGRPOConfig:
    kwargs = dict(
        output_dir=output_dir,
        seed=seed,
        max_steps=100_000,
        max_completion_length=BUDGET,
        # d1's Sudoku recipe: 16 prompts x 6 generations per optimizer step (8 GPUs x 6 x accumulation 2).
        num_generations=6,
        per_device_train_batch_size=96,
        num_iterations=8,
        epsilon=0.5,
        beta=0.04,
        p_mask_prompt=0.15,
        temperature=0.9,
        block_length=BUDGET,  # d1's 32 exceeds the 16-token completion: one block
        diffusion_steps=BUDGET // 2,
        adam_beta1=0.9,
        adam_beta2=0.99,
        weight_decay=0.1,
        max_grad_norm=0.2,
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=1,
        logging_steps=10,
        save_strategy="no",
        report_to="none",
        bf16=False,
        disable_tqdm=True,
        use_cpu=True,
    )
    kwargs.update(overrides)
    return DiffuGRPOConfig(**kwargs)


def run_trial(trial: Trial, example, base, tokenizer, data, budget_calls: int, eval_every: int, seed: int, out: str):
    counter = RewardCounter()
    tracker = BudgetAndAccuracy(counter, budget_calls, tokenizer, data["test_track"], eval_every)
    model = copy.deepcopy(base)
    folder = os.path.join(out, trial.method.lower().replace(" ", "_"))
    if trial.method.startswith("DAM"):
        args = dam_args(example, folder, seed, trial.overrides)
        trainer_class = DAMTrainer
    else:
        args = grpo_args(folder, seed, trial.overrides)
        trainer_class = DiffuGRPOTrainer
    trainer = trainer_class(
        model,
        counter.funcs(),
        args=args,
        train_dataset=data["train"],
        processing_class=tokenizer,
        callbacks=[tracker],
    )
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    model.eval()
    trial.result = {
        "steps": trainer.state.global_step,
        "reward_calls": counter.calls,
        "seconds": tracker.train_seconds(),
        "validation": evaluate(model, tokenizer, data["validation"]),
        "test": evaluate(model, tokenizer, data["test"]),
        "history": tracker.history,
    }
    print(
        f"  {trial.method:<17} {trial.name:<24} steps {trial.result['steps']:>5}  calls {counter.calls:>6}  "
        f"{trial.result['seconds']:7.1f}s  val {trial.result['validation']['cell_accuracy']:.3f}  "
        f"test {trial.result['test']['cell_accuracy']:.3f}",
        flush=True,
    )
    return trial


# ---------------------------------------------------------------------------------------------- base and SVDD


def get_base(example, args) -> tuple[torch.nn.Module, object, dict]:
    """The demo's pre-trained base (built once, then loaded from `--base-dir`)."""
    script_args = example.SudokuScriptArguments()
    if args.quick:
        script_args.pretrain_steps = 20
    training_args = dam_args(example, os.path.join(args.output_dir, "base-build"), args.seed, {})
    key = json.dumps([asdict(script_args), training_args.seed, training_args.max_completion_length], sort_keys=True)
    folder = Path(args.base_dir) / hashlib.sha1(key.encode()).hexdigest()[:12]
    info_file = folder / "pretraining.json"
    if info_file.exists():
        info = json.loads(info_file.read_text()) | {"cached": True}
        return AutoModelForMaskedLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder), info
    model, tokenizer, info = example.build_tiny_base(script_args, training_args)
    model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    info = {**info, "pretrain_steps": script_args.pretrain_steps, "folder": str(folder)}
    info_file.write_text(json.dumps(info))
    return model, tokenizer, info | {"cached": False}


@torch.no_grad()
def svdd_base(base, tokenizer, rows, num_candidates: int, alpha: float, seed: int) -> dict:
    """SVDD-PM decoding of the base with the training reward (which reads the puzzle's solution: an oracle reward)."""
    from trl_dam.evaluation import prompt_canvas, tokenize_prompts
    from trl_dam.models import resolve_adapter

    adapter = resolve_adapter(base, tokenizer)
    eos = eos_token_ids(tokenizer, base)
    prompt_ids = tokenize_prompts(tokenizer, rows["prompt"])
    x = prompt_canvas(prompt_ids, BUDGET, tokenizer.pad_token_id, adapter.mask_token_id)
    calls = 0
    funcs = [sudoku_reward, sudoku_compact_format_reward]

    def logits_fn(states):
        return adapter.logits(base, states)

    def reward_fn(states):
        nonlocal calls
        repeat = len(states) // len(prompt_ids)
        texts = completion_texts(tokenizer, states[:, -BUDGET:], eos)
        columns = {key: [v for v in rows[key] for _ in range(repeat)] for key in ("puzzle", "solution")}
        prompts = [p for p in rows["prompt"] for _ in range(repeat)]
        calls += len(texts)
        total = torch.zeros(len(texts))
        for func in funcs:
            total += torch.tensor(func(prompts, texts, **columns), dtype=torch.float)
        return total

    start = time.perf_counter()
    out = svdd_decode(
        logits_fn,
        x,
        adapter.mask_token_id,
        reward_fn,
        num_candidates=num_candidates,
        alpha=alpha,
        generator=torch.Generator().manual_seed(seed),
    )
    seconds = time.perf_counter() - start
    texts = completion_texts(tokenizer, out[:, -BUDGET:], eos)
    scores = score_completions(texts, rows["puzzle"], rows["solution"]).as_dict()
    return {**scores, "reward_calls": calls, "seconds": seconds}


# ---------------------------------------------------------------------------------------------- report


def first_time_reaching(history: list[dict], accuracy: float) -> float | None:
    for entry in history:
        if entry["cell_accuracy"] >= accuracy:
            return entry["seconds"]
    return None


def format_table(report: dict) -> str:
    lines = [
        f"Sudoku 4x4, held-out puzzles ({report['num_test']}, unseen solution grids), greedy low-confidence decoding, "
        f"budget {report['budget_calls']} reward calls per fine-tuning run",
        "",
        f"{'method':<44} {'cell acc':>8} {'solved':>7} {'reward calls':>12} {'wall s':>8}",
    ]
    for row in report["rows"]:
        lines.append(
            f"{row['name']:<44} {row['cell_accuracy']:>8.3f} {row['puzzle_accuracy']:>7.3f} "
            f"{row['reward_calls']:>12} {row['seconds']:>8.1f}"
        )
    lines += ["", "Accuracy over time (held-out tracking subset, selected trials):"]
    for method, history in report["curves"].items():
        points = "  ".join(f"{h['seconds']:.0f}s/{h['reward_calls']}:{h['cell_accuracy']:.2f}" for h in history)
        lines.append(f"  {method:<18} {points}")
    lines += ["", "Hyper-parameter trials (selected by validation cell accuracy, equal number per method):"]
    for trial in report["trials"]:
        mark = "*" if trial["selected"] else " "
        lines.append(
            f" {mark} {trial['method']:<17} {trial['name']:<24} val {trial['validation']:.3f}  "
            f"test {trial['test']:.3f}  {trial['seconds']:.0f}s"
        )
    for dam, t in report["targets"].items():
        lines += [
            "",
            f"Gap {dam} - diffu-GRPO at the end of the budget: {100 * t['gap']:+.1f} points (target >= +30).",
            f"{dam} reaches diffu-GRPO's final accuracy ({t['grpo_final']:.3f}) after "
            + (
                f"{t['dam_time_to_grpo_final']:.0f}s"
                if t["dam_time_to_grpo_final"] is not None
                else "never (within budget)"
            )
            + f"; diffu-GRPO's wall time {t['grpo_seconds']:.0f}s (target: at most half).",
        ]
    return "\n".join(lines)


METHODS = ("dam", "diffu-grpo", "svdd")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="reduced smoke run (under a minute)")
    parser.add_argument("--json", default=None, help="write the figures as JSON to this path")
    parser.add_argument("--budget-calls", type=int, default=None, help="reward calls per fine-tuning run")
    parser.add_argument("--num-test", type=int, default=256, help="held-out puzzles (d1 evaluates 256)")
    parser.add_argument("--num-validation", type=int, default=128, help="validation puzzles (training grids)")
    parser.add_argument("--svdd-candidates", type=int, default=8)
    parser.add_argument("--svdd-alpha", type=float, default=0.0)
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=METHODS,
        default=list(METHODS),
        help="what to run besides the base's greedy decoding (e.g. `--methods dam` for DAM-only runs)",
    )
    parser.add_argument(
        "--dam-targets",
        nargs="+",
        choices=DAM_TARGETS,
        default=["first_jump"],
        help="DAMConfig.dam_target values; DAM's trials run once per target",
    )
    parser.add_argument(
        "--dam-trials",
        nargs="+",
        choices=list(DAM_RECIPES),
        default=None,
        help="run only these DAM trials (default: all; --quick runs its own single trial)",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output-dir", default="outputs/sudoku_compare")
    parser.add_argument("--base-dir", default="outputs/sudoku_compare/bases")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    example = load_example()
    script = example.SudokuScriptArguments()
    num_test = 32 if args.quick else args.num_test
    num_validation = 16 if args.quick else args.num_validation
    budget_calls = args.budget_calls or (120 if args.quick else 20480)  # full: the demo's 80 DAM steps x 256 rollouts
    data = {
        "train": generate_sudoku_dataset(
            script.num_train_puzzles, seed=script.puzzle_seed, num_blanks=script.num_blanks, prompt_style="compact"
        ),
        "validation": generate_sudoku_dataset(
            num_validation, seed=script.puzzle_seed + 3, num_blanks=script.num_blanks, prompt_style="compact"
        ),
        "test": generate_sudoku_dataset(
            num_test, seed=script.puzzle_seed + 1, num_blanks=script.num_blanks, split="test", prompt_style="compact"
        ),
    }
    data["test_track"] = data["test"].select(range(min(128, num_test)))
    base, tokenizer, base_info = get_base(example, args)
    print(f"base: {base_info}", flush=True)

    rows = []
    base_start = time.perf_counter()
    base_scores = evaluate(base, tokenizer, data["test"])
    rows.append(
        {"name": "base, greedy", **base_scores, "reward_calls": 0, "seconds": time.perf_counter() - base_start}
    )
    print(f"  base {base_scores}", flush=True)
    if "svdd" in args.methods:
        svdd_rows = data["test"].select(range(16)) if args.quick else data["test"]
        svdd = svdd_base(base, tokenizer, svdd_rows, args.svdd_candidates, args.svdd_alpha, args.seed)
        rows.append({"name": f"base + SVDD (M={args.svdd_candidates}, oracle reward)", **svdd})
        print(f"  SVDD {svdd}", flush=True)

    eval_every = max(budget_calls // 6, 1)
    trials = []
    if "dam" in args.methods:
        trials += dam_trials(args.quick, args.dam_targets, args.dam_trials)
    if "diffu-grpo" in args.methods:
        trials += grpo_trials(args.quick)
    for trial in trials:
        run_trial(trial, example, base, tokenizer, data, budget_calls, eval_every, args.seed, args.output_dir)
    selected = {}
    for method in dict.fromkeys(t.method for t in trials):
        candidates = [t for t in trials if t.method == method]
        selected[method] = max(candidates, key=lambda t: t.result["validation"]["cell_accuracy"])
        best = selected[method]
        rows.append(
            {
                "name": f"{method} ({best.name})",
                **best.result["test"],
                "reward_calls": best.result["reward_calls"],
                "seconds": best.result["seconds"],
            }
        )
    targets = {}
    if "diffu-GRPO" in selected:
        grpo = selected["diffu-GRPO"].result
        grpo_final = grpo["history"][-1]["cell_accuracy"]
        for method, trial in selected.items():
            if method.startswith("DAM"):
                targets[method] = {
                    "gap": trial.result["test"]["cell_accuracy"] - grpo["test"]["cell_accuracy"],
                    "grpo_final": grpo_final,
                    "grpo_seconds": grpo["seconds"],
                    "dam_time_to_grpo_final": first_time_reaching(trial.result["history"], grpo_final),
                }
    report = {
        "num_test": num_test,
        "budget_calls": budget_calls,
        "base": base_info,
        "rows": rows,
        "curves": {m: t.result["history"] for m, t in selected.items()},
        "trials": [
            {
                "method": t.method,
                "name": t.name,
                "overrides": t.overrides,
                "selected": selected[t.method] is t,
                "validation": t.result["validation"]["cell_accuracy"],
                "test": t.result["test"]["cell_accuracy"],
                "seconds": t.result["seconds"],
                "reward_calls": t.result["reward_calls"],
                "steps": t.result["steps"],
                "history": t.result["history"],
            }
            for t in trials
        ],
        "targets": targets,
        "total_seconds": time.perf_counter() - start,
    }
    print()
    print(format_table(report))
    print(f"\ntotal {report['total_seconds'] / 60:.1f} min")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
