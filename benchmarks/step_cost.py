"""Per-step cost of DAM against diffu-GRPO on a medium CPU model, at equal rollouts per step.

Both trainers get the same tiny LLaDA-shaped model (default hidden 256, 4 layers, N = 64 completion tokens), the same
prompts and reward, and 16 rollouts per optimizer step (DAM: 2 training states x K = 8; diffu-GRPO: 2 prompts x 8
completions, mu = 1), each with its own defaults otherwise: DAM samples with the exact CTMC (one token per call, the
reference in the same loop), diffu-GRPO with d1's low-confidence sampler (N/2 calls, blocks of 32). The step time is split by timing the trainer's own pieces:

* ``policy sampling``: no-grad policy denoiser calls (rollouts; DAM's generation round of X1 too);
* ``reference``: reference denoiser calls (inside DAM's rollouts; diffu-GRPO's one mean-field forward);
* ``prepare other``: the rest of input preparation (rewards, weights, re-masking, bookkeeping);
* ``loss forward`` and ``backward``: the gradient forward (``compute_loss``) and its backward;
* ``optimizer + other``: the rest of the optimizer step.

A DAM run with ``fold_generation`` samples each generation round (after the warm-up step's) inside the rollout batch:
the same rows in expectation (not per step: the training states' masks are other random draws), N + M sequential calls
per step instead of N + 2M (M: the most masks of the step's states).

A third DAM run reveals two tokens per denoiser call (``diffusion_steps = N / 2``: still an exact CTMC with a tractable
path likelihood, so the weights stay exact), the same number of calls as d1's sampler.

Also per step: denoiser rows (sequence-forwards) and sequential calls, and *trained tokens per gradient-forward row*
(token targets that receive gradient, divided by the rows of the gradient forward). The first step is a warm-up and
is not counted.

    python benchmarks/step_cost.py            # medium model (several CPU minutes)
    python benchmarks/step_cost.py --quick    # small model, under a minute
    python benchmarks/step_cost.py --vocab 50257 --methods first_jump diffu-GRPO   # MDLM-sized vocabulary
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import defaultdict

import torch
from datasets import Dataset
from transformers import TrainerCallback

from trl_dam.models import build_char_tokenizer, build_tiny_masked_lm
from trl_dam.trainers import DAMConfig, DAMTrainer, DiffuGRPOConfig, DiffuGRPOTrainer

PROMPTS = ["abc", "de", "fgh a", "h", "bb", "cab", "g", "ef", "ha", "gg", "bd", "c", "ab", "hh", "fa", "dd"]


def frac_a(completions, **kwargs):
    return [c.count("a") / max(1, len(c)) for c in completions]


class _Clock:
    def __init__(self):
        self.seconds, self.rows, self.calls = defaultdict(float), defaultdict(int), defaultdict(int)

    def wrap(self, name, fn):
        def timed(*args, **kwargs):
            tic = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - tic
                self.calls[name] += 1
                if args and isinstance(args[0], torch.Tensor):
                    self.rows[name] += args[0].shape[0]

        # A timed denoiser is still asked for the revealed positions only (see trl_dam.core.sampling.logits_at).
        timed.accepts_positions = getattr(fn, "accepts_positions", False)
        return timed


class _StepTimer(TrainerCallback):
    def __init__(self):
        self.durations, self._tic = [], 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._tic = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.durations.append(time.perf_counter() - self._tic)


def _instrument(trainer, clock: _Clock) -> None:
    """Time the trainer's denoisers, input preparation, loss forward and training step on this instance."""
    denoiser = trainer._denoiser

    def timed_denoiser(model, reference=False):
        # The reference is the policy with adapters off (PEFT) or the frozen copy; both go through `_denoiser`.
        is_reference = reference or model is trainer.ref_model
        return clock.wrap("reference" if is_reference else "policy sampling", denoiser(model, reference))

    trainer._denoiser = timed_denoiser
    for name, attribute in (
        ("prepare", "_prepare_inputs"),
        ("loss forward", "compute_loss"),
        ("step", "training_step"),
    ):
        setattr(trainer, attribute, clock.wrap(name, getattr(trainer, attribute)))


def _trained_tokens(method: str, inputs: dict) -> tuple[int, int]:
    """(token targets with a gradient, gradient-forward rows) of one micro-batch's inputs."""
    if method == "diffu-GRPO":
        return int(inputs["loss_mask"].sum()), inputs["sequences"].shape[0]
    rows = inputs["x_t"].shape[0]
    if "masked" in inputs:
        return int(inputs["masked"].sum()) * inputs["weights"].shape[1], rows
    return int((inputs["positions"] >= 0).sum()), rows


def alphabet(vocab: int | None) -> str:
    """The prompts' characters, padded with CJK ideographs (U+4E00 on, then U+20000 on) to about ``vocab`` tokens."""
    chars = "abcdefgh "
    extra = max(0, (vocab or 0) - len(chars) - 9)  # 9 special and role tokens
    return (
        chars
        + "".join(chr(0x4E00 + i) for i in range(min(extra, 20_000)))
        + "".join(chr(0x20000 + i) for i in range(max(0, extra - 20_000)))
    )


def run(method: str, args, target: str = "first_jump", tokens_per_step: int = 1, fold: bool = False) -> dict:
    tokenizer = build_char_tokenizer(alphabet(args.vocab))
    model = build_tiny_masked_lm(
        tokenizer, kind="llada", hidden_size=args.hidden, num_layers=args.layers, num_heads=4, seed=0
    )
    common = dict(
        output_dir=tempfile.mkdtemp(),
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        max_steps=args.steps + 1,
        per_device_train_batch_size=16,
        num_generations=8,
        max_completion_length=args.length,
        learning_rate=1e-4,
        logging_steps=1,
        seed=0,
    )
    dataset = Dataset.from_dict({"prompt": PROMPTS})
    if method == "DAM":
        config = DAMConfig(
            **common,
            beta=0.1,
            dam_target=target,
            diffusion_steps=args.length // tokens_per_step,
            fold_generation=fold,
        )
        trainer = DAMTrainer(model, frac_a, args=config, train_dataset=dataset, processing_class=tokenizer)
    else:
        config = DiffuGRPOConfig(**common, block_length=min(32, args.length))
        trainer = DiffuGRPOTrainer(model, frac_a, args=config, train_dataset=dataset, processing_class=tokenizer)
    clock, timer = _Clock(), _StepTimer()
    trained = []
    prepare = trainer._prepare_inputs

    def prepare_and_count(rows):
        inputs = prepare(rows)
        trained.append(_trained_tokens(method, inputs))
        return inputs

    trainer._prepare_inputs = prepare_and_count
    _instrument(trainer, clock)
    trainer.add_callback(timer)
    # Warm-up step, then reset every counter.
    warm = {}

    class _Reset(TrainerCallback):
        def on_step_end(self, a, state, control, **kwargs):
            if state.global_step == 1:
                warm.update(seconds=dict(clock.seconds), rows=dict(clock.rows), calls=dict(clock.calls))
                trained.clear()

    trainer.add_callback(_Reset())
    trainer.train()
    steps = args.steps

    def per_step(kind, key):
        return (getattr(clock, kind).get(key, 0) - warm[kind].get(key, 0)) / steps

    seconds = {key: per_step("seconds", key) for key in ("policy sampling", "reference", "prepare", "loss forward")}
    step_total = sum(timer.durations[1:]) / steps
    training_step = per_step("seconds", "step")
    record = {
        "method": method if method != "DAM" else f"DAM ({target}, {tokens_per_step} tok/call{', folded' * fold})",
        "step_s": step_total,
        "policy_sampling_s": seconds["policy sampling"],
        "reference_s": seconds["reference"],
        "prepare_other_s": seconds["prepare"] - seconds["policy sampling"] - seconds["reference"],
        "loss_forward_s": seconds["loss forward"],
        "backward_s": training_step - seconds["prepare"] - seconds["loss forward"],
        "optimizer_other_s": step_total - training_step,
        "denoiser_rows": sum(per_step("rows", key) for key in ("policy sampling", "reference")),
        "denoiser_calls": sum(per_step("calls", key) for key in ("policy sampling", "reference")),
        "trained_tokens_per_gradient_row": sum(t for t, _ in trained) / max(1, sum(r for _, r in trained)),
    }
    return record


#: name -> (trainer, dam_target, other options): the rows of the table, diffu-GRPO last.
RUNS = {
    "first_jump": ("DAM", "first_jump", {}),
    "first_jump_folded": ("DAM", "first_jump", {"fold": True}),
    "all_positions": ("DAM", "all_positions", {}),
    "all_positions_2tok": ("DAM", "all_positions", {"tokens_per_step": 2}),
    "diffu-GRPO": ("diffu-GRPO", None, {}),
}


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--length", type=int, default=64, help="completion tokens N")
    parser.add_argument("--steps", type=int, default=3, help="measured optimizer steps (after one warm-up step)")
    parser.add_argument(
        "--vocab",
        type=int,
        default=None,
        help="vocabulary size (default: the 18 tokens of the prompts' characters); a large one (e.g. 50257, MDLM's) "
        "makes the output head a large share of every forward, as in small real models",
    )
    parser.add_argument("--methods", nargs="+", default=list(RUNS), choices=list(RUNS), help="rows to run")
    parser.add_argument("--quick", action="store_true", help="hidden 64, 2 layers, N = 16, 2 steps")
    parser.add_argument("--json", default="outputs/step_cost.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.hidden, args.layers, args.length, args.steps = 64, 2, 16, 2
    torch.set_num_threads(1)
    records = [
        run(RUNS[name][0], args, RUNS[name][1], **RUNS[name][2]) for name in args.methods if name != "diffu-GRPO"
    ]
    # diffu-GRPO runs last and is the denominator of "x GRPO" (NaN when it was not asked for).
    grpo = float("nan")
    if "diffu-GRPO" in args.methods:
        records.append(run("diffu-GRPO", args))
        grpo = records[-1]["step_s"]
    columns = (
        "step_s",
        "policy_sampling_s",
        "reference_s",
        "prepare_other_s",
        "loss_forward_s",
        "backward_s",
        "optimizer_other_s",
    )
    vocab = len(build_char_tokenizer(alphabet(args.vocab)))
    print(
        f"hidden {args.hidden}, {args.layers} layers, vocabulary {vocab}, N = {args.length}, 16 rollouts per step, "
        f"{args.steps} steps"
    )
    header = f"{'method':42s} " + " ".join(f"{c[:-2]:>15s}" for c in columns)
    header += f" {'x GRPO':>7s} {'rows':>7s} {'calls':>6s} {'tok/row':>8s}"
    print(header)
    for record in records:
        print(
            f"{record['method']:42s} "
            + " ".join(f"{record[c]:15.3f}" for c in columns)
            + f" {record['step_s'] / grpo:7.2f} {record['denoiser_rows']:7.0f} {record['denoiser_calls']:6.0f}"
            f" {record['trained_tokens_per_gradient_row']:8.1f}"
        )
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as handle:
            json.dump(
                {"hidden": args.hidden, "layers": args.layers, "vocab": vocab, "length": args.length, "runs": records},
                handle,
            )
    return records


if __name__ == "__main__":
    main()
