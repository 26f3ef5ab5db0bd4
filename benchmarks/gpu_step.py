"""One optimizer step of `DAMTrainer` and `DiffuGRPOTrainer` at the paper's LLaDA-8B recipe, measured on one device.

The model is the project's LLaDA-shaped `TinyLLaDAModelLM` built at LLaDA-8B's dimensions (32 layers, hidden 4096,
32 heads, MLP 12288, vocabulary 126,464; random weights, bf16, nothing downloaded), or a hub id / folder given with
`--model`. The recipe: LoRA r=128, alpha=64 on `q_proj k_proj v_proj up_proj`, K=12 rollouts (12 generations), a
256-token completion after a ~200-token prompt, two tokens per denoiser call, one training state (DAM) / one prompt
group (diffu-GRPO) per optimizer step, `sampling_batch_size=12`.

For each trainer it reports the peak memory (`torch.cuda.max_memory_allocated`; on CPU the process's peak RSS), the
seconds of an optimizer step split into disjoint parts, the denoiser calls per step (measured with a forward hook,
and expected: from the config for a fully masked canvas, from the sampled paths where the re-masked states make the
count random), and the rollout tokens per second. The parts come from timers wrapped around the trainers' own methods
(`_generate_and_score`, `_score`, `_run_sampler`, the denoisers, `compute_loss`, `accelerator.backward`) and from the
optimizer callbacks; a nested timer's time is taken out of its parent, so the parts add up to the timed time:

* generation round: sampling and decoding fresh completions (its denoiser calls included), rewards excluded;
* rollouts, policy / reference: denoiser calls outside the generation round (DAM's K rollouts from the re-masked
  state with their reference log-probs; diffu-GRPO's old and reference mean-field log-probs);
* sampler: the samplers' own work between those calls; rewards: scoring every completion;
* loss forward / backward, optimizer (step, clipping, zeroing); other: the rest of the step (Trainer bookkeeping).

    python benchmarks/gpu_step.py                            # LLaDA-8B dimensions on the first GPU
    python benchmarks/gpu_step.py --model GSAI-ML/LLaDA-8B-Instruct --trust-remote-code
    python benchmarks/gpu_step.py --quick --json step.json   # the same code path, tiny model on CPU (< 1 minute)
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import resource
import sys
import tempfile
import time
from collections import defaultdict

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import TrainerCallback

from trl_dam.core import logits_at
from trl_dam.models import TinyLLaDAConfig, TinyLLaDAModelLM, build_char_tokenizer, unwrap_model
from trl_dam.trainers import DAMConfig, DAMTrainer, DiffuGRPOConfig, DiffuGRPOTrainer

#: LLaDA-8B's dimensions (GSAI-ML/LLaDA-8B-Instruct's config.json).
LLADA_8B = dict(d_model=4096, n_layers=32, n_heads=32, mlp_hidden_size=12288, vocab_size=126464)
QUICK = dict(d_model=64, n_layers=2, n_heads=4, mlp_hidden_size=128, vocab_size=64)
RECIPE = dict(num_generations=12, max_completion_length=256, prompt_length=200, diffusion_steps=128, lora_r=128)
QUICK_RECIPE = dict(num_generations=4, max_completion_length=16, prompt_length=12, diffusion_steps=8, lora_r=4)
NUM_SPECIAL = 9  # build_char_tokenizer's special tokens before the alphabet
PARTS = (
    "generation_round",
    "rollouts_policy",
    "rollouts_reference",
    "sampler",
    "rewards",
    "loss_forward",
    "loss_backward",
    "optimizer",
)


class Timer:
    """Exclusive wall time per label: a section nested in another is taken out of its parent's time."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)
        self.stack: list[list] = []  # [label, start, time of children]

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def start(self, label: str) -> None:
        self._sync()
        self.stack.append([label, time.perf_counter(), 0.0])

    def stop(self) -> None:
        self._sync()
        label, start, children = self.stack.pop()
        elapsed = time.perf_counter() - start
        self.seconds[label] += elapsed - children
        if self.stack:
            self.stack[-1][2] += elapsed

    @contextlib.contextmanager
    def section(self, label: str):
        self.start(label)
        try:
            yield
        finally:
            self.stop()

    def inside(self, label: str) -> bool:
        return any(entry[0] == label for entry in self.stack)


class StepRecorder(TrainerCallback):
    """Per optimizer step: timer parts, denoiser calls, sampled paths; the optimizer's time between its callbacks."""

    def __init__(self, timer: Timer):
        self.timer = timer
        self.steps: list[dict] = []
        self.calls: dict[str, int] = defaultdict(int)
        self.expected_calls = 0
        self.revealed = 0
        self._start = None

    def on_step_begin(self, args, state, control, **kwargs):
        if self._start is None:  # the first micro-step of an optimizer step
            self.timer.seconds.clear()
            self.calls = defaultdict(int)
            self.expected_calls = self.revealed = 0
            self.timer._sync()
            self._start = time.perf_counter()

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.timer.start("optimizer")

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.timer.stop()

    def on_step_end(self, args, state, control, **kwargs):
        self.timer._sync()
        total = time.perf_counter() - self._start
        self._start = None
        parts = {name: self.timer.seconds.get(name, 0.0) for name in PARTS}
        self.steps.append(
            {
                "total": total,
                **parts,
                "other": total - sum(parts.values()),
                "denoiser_calls": sum(self.calls.values()),
                "expected_denoiser_calls": self.expected_calls,
                "denoiser_calls_by_part": dict(self.calls),
                "rollout_tokens": self.revealed,
            }
        )


def instrument(trainer, recorder: StepRecorder) -> None:
    """Wrap the trainer's own methods with timers and counters (no trainer code is copied)."""
    timer = recorder.timer

    def timed(name: str, label: str):
        method = getattr(trainer, name)

        @functools.wraps(method)
        def wrapper(*args, **kwargs):
            with timer.section(label):
                return method(*args, **kwargs)

        setattr(trainer, name, wrapper)

    timed("_generate_and_score", "generation_round")
    timed("_score", "rewards")
    timed("compute_loss", "loss_forward")
    compute_loss = trainer.compute_loss

    def counted_loss(*args, **kwargs):
        # DAM's loss is one forward on X_t; diffu-GRPO's goes through `_token_log_probs` (counted there).
        recorder.expected_calls += 0 if hasattr(trainer, "_token_log_probs") else 1
        return compute_loss(*args, **kwargs)

    trainer.compute_loss = counted_loss
    if hasattr(trainer, "_token_log_probs"):  # diffu-GRPO: one mean-field forward per call
        token_log_probs = trainer._token_log_probs

        def counted_log_probs(*args, **kwargs):
            recorder.expected_calls += 1
            return token_log_probs(*args, **kwargs)

        trainer._token_log_probs = counted_log_probs
    backward = trainer.accelerator.backward

    def timed_backward(loss, **kwargs):
        with timer.section("loss_backward"):
            return backward(loss, **kwargs)

    trainer.accelerator.backward = timed_backward

    run_sampler = trainer._run_sampler

    def counted_sampler(policy, x, reference, reference_rows=None):
        with timer.section("generation_round" if timer.inside("generation_round") else "sampler"):
            trajectory = run_sampler(policy, x, reference, reference_rows)
        # A sampler calls its denoisers once per step in which some row reveals a token (the others are skipped); the
        # reference only at steps where one of its rows does (`reference_rows`: a folded generation round has none).
        active_steps = int(trajectory.step_mask.any(0).sum())
        recorder.expected_calls += active_steps
        if reference is not None:
            with_reference = trajectory.step_mask if reference_rows is None else trajectory.step_mask[reference_rows]
            recorder.expected_calls += int(with_reference.any(0).sum())
        recorder.revealed += int((trajectory.positions >= 0).sum())
        return trajectory

    trainer._run_sampler = counted_sampler
    make_denoiser = trainer._denoiser

    def timed_denoiser(model, reference: bool = False):
        logits_fn = make_denoiser(model, reference)
        role = "reference" if reference or model is trainer.ref_model else "policy"

        def call(x, positions=None):
            label = "generation_round" if timer.inside("generation_round") else f"rollouts_{role}"
            with timer.section(label):
                return logits_fn(x) if positions is None else logits_at(logits_fn, x, positions)

        call.accepts_positions = True  # the samplers still ask for the revealed positions only
        return call

    trainer._denoiser = timed_denoiser

    def count(module, args):
        recorder.calls[timer.stack[-1][0] if timer.stack else "untimed"] += 1

    for network in {id(m): m for m in (unwrap_model(trainer.model), trainer.ref_model) if m is not None}.values():
        unwrap_model(network).register_forward_pre_hook(count)


def build_model(dims: dict, tokenizer, device: torch.device, dtype: torch.dtype) -> TinyLLaDAModelLM:
    config = TinyLLaDAConfig(
        **dims, mask_token_id=tokenizer.mask_token_id, max_sequence_length=4096, embedding_size=dims["vocab_size"]
    )
    with torch.device(device):
        model = TinyLLaDAModelLM(config)
    return model.to(dtype)


def char_tokenizer(vocab_size: int):
    """A character tokenizer with exactly `vocab_size` tokens (supplementary-plane characters), so every id the model
    can sample decodes."""
    alphabet = [chr(0x10000 + i) for i in range(vocab_size - NUM_SPECIAL)]
    tokenizer = build_char_tokenizer(alphabet)
    assert len(tokenizer) == vocab_size, len(tokenizer)
    return tokenizer


def first_char_reward(completions, **kwargs):
    """Cheap, completion-dependent: the fraction of characters equal to the completion's first one."""
    return [text.count(text[0]) / len(text) if text else 0.0 for text in completions]


def config_calls(method: str, recipe: dict, args) -> dict:
    """Denoiser calls of one optimizer step that the config fixes (fully masked canvases, log-prob forwards)."""
    n, k = recipe["max_completion_length"], args.tokens_per_step
    canvas_calls = args.num_diffusion_steps if args.sampler == "low_confidence" else math.ceil(n / k)
    sb = args.sampling_batch_size or args.per_device_train_batch_size
    if method == "dam":
        chunks = math.ceil(args.prompts_per_generation / min(sb, args.prompts_per_generation))
        rollout_chunks = math.ceil(args.per_device_train_batch_size / sb)
        return {
            "generation_round": chunks * canvas_calls,  # on the steps that start a round (every inner_steps)
            "rollouts_at_most": rollout_chunks * canvas_calls * 2,  # policy + reference, <= N masked tokens
            "loss_forward": 1,
        }
    rows = args.per_device_train_batch_size
    chunks = math.ceil(rows / sb)
    return {
        "generation_round": chunks * canvas_calls,  # every num_iterations steps
        "log_probs": (args.num_iterations - 1) + (args.num_iterations if args.beta > 0 else 0),
        "loss_forward": 1,
    }


def run(
    method: str,
    model,
    tokenizer,
    recipe: dict,
    steps: int,
    device: torch.device,
    out_dir: str,
    gradient_checkpointing: bool = True,
) -> dict:
    timer = Timer(device)
    recorder = StepRecorder(timer)
    k = recipe["num_generations"]
    common = dict(
        output_dir=os.path.join(out_dir, method),
        max_steps=steps,
        per_device_train_batch_size=k,
        num_generations=k,
        max_completion_length=recipe["max_completion_length"],
        diffusion_steps=recipe["diffusion_steps"],
        sampling_batch_size=k,
        learning_rate=3e-6,
        bf16=device.type == "cuda",
        use_cpu=device.type == "cpu",
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        gradient_checkpointing=gradient_checkpointing,
        seed=0,
    )
    if method == "dam":
        args = DAMConfig(**common, beta=0.05)
        trainer_class = DAMTrainer
    else:
        args = DiffuGRPOConfig(**common, block_length=32 if recipe["max_completion_length"] % 32 == 0 else None)
        trainer_class = DiffuGRPOTrainer
    alphabet = [tokenizer.convert_ids_to_tokens(i) for i in range(NUM_SPECIAL, min(len(tokenizer), NUM_SPECIAL + 50))]
    gen = torch.Generator().manual_seed(0)
    prompts = [
        "".join(alphabet[int(j)] for j in torch.randint(len(alphabet), (recipe["prompt_length"],), generator=gen))
        for _ in range(4 * k)
    ]
    peft = LoraConfig(
        r=recipe["lora_r"], lora_alpha=recipe["lora_r"] // 2, target_modules=["q_proj", "k_proj", "v_proj", "up_proj"]
    )
    trainer = trainer_class(
        model,
        first_char_reward,
        args=args,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        processing_class=tokenizer,
        peft_config=peft,
        callbacks=[recorder],
    )
    instrument(trainer, recorder)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trainer.train()
    peak = (
        torch.cuda.max_memory_allocated(device)
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB; the process's peak so far
    )
    measured = recorder.steps[1:] or recorder.steps  # the first step pays the warm-up
    numbers = [key for key, value in measured[0].items() if not isinstance(value, dict)]
    mean = {key: sum(step[key] for step in measured) / len(measured) for key in numbers}
    result = {
        "method": method,
        "peak_memory_bytes": int(peak),
        "peak_memory_kind": "cuda_max_allocated" if device.type == "cuda" else "process_peak_rss",
        "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "config_denoiser_calls": config_calls(method, recipe, trainer.args),
        "steps": recorder.steps,
        "mean": mean,
        "rollout_tokens_per_second": mean["rollout_tokens"] / mean["total"],
    }
    # The adapters stay on the shared base model otherwise: the next trainer must start from the plain network.
    trainer.model.unload()
    return result


def format_table(report: dict) -> str:
    cols = ["dam", "diffu_grpo"]
    by = {r["method"]: r for r in report["runs"]}
    cols = [c for c in cols if c in by]
    lines = [f"{'':30}" + "".join(f"{c:>14}" for c in cols)]

    def row(name, fn, fmt):
        lines.append(f"{name:30}" + "".join(f"{fmt(fn(by[c])):>14}" for c in cols))

    gib = 2**30
    row("peak memory (GiB)", lambda r: r["peak_memory_bytes"] / gib, lambda v: f"{v:.2f}")
    row("seconds / optimizer step", lambda r: r["mean"]["total"], lambda v: f"{v:.3f}")
    for part in (*PARTS, "other"):
        row(f"  {part}", lambda r, p=part: r["mean"][p], lambda v: f"{v:.3f}")
    row("denoiser calls / step", lambda r: r["mean"]["denoiser_calls"], lambda v: f"{v:.1f}")
    row("  expected from the paths", lambda r: r["mean"]["expected_denoiser_calls"], lambda v: f"{v:.1f}")
    row("rollout tokens / second", lambda r: r["rollout_tokens_per_second"], lambda v: f"{v:.1f}")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny model on CPU, same code path (under a minute)")
    parser.add_argument("--json", default=None, help="write the figures as JSON to this path")
    parser.add_argument("--model", default=None, help="hub id or folder instead of the LLaDA-8B-shaped random model")
    parser.add_argument("--trust-remote-code", action="store_true", help="for --model checkpoints with remote code")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per trainer (first = warm-up)")
    parser.add_argument("--methods", nargs="+", default=["dam", "diffu_grpo"], choices=["dam", "diffu_grpo"])
    parser.add_argument(
        "--no-gradient-checkpointing", action="store_true", help="keep every activation of the gradient forwards"
    )
    parser.add_argument("--device", default=None, help="default: cuda if available (never with --quick), else cpu")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() and not args.quick else "cpu"))
    recipe = QUICK_RECIPE if args.quick else RECIPE
    steps = args.steps or (2 if args.quick else 3)
    torch.manual_seed(0)
    if args.model:
        from transformers import AutoTokenizer

        from trl_dam.models import load_diffusion_lm

        tokenizer = AutoTokenizer.from_pretrained(
            args.model, padding_side="left", trust_remote_code=args.trust_remote_code
        )
        model = load_diffusion_lm(args.model, trust_remote_code=args.trust_remote_code, dtype=torch.bfloat16)
        model = model.to(device)
        model_name = args.model
    else:
        dims = QUICK if args.quick else LLADA_8B
        tokenizer = char_tokenizer(dims["vocab_size"])
        model = build_model(dims, tokenizer, device, torch.float32 if args.quick else torch.bfloat16)
        model_name = "TinyLLaDAModelLM at " + ("quick" if args.quick else "LLaDA-8B") + f" dimensions {dims}"
    parameters = sum(p.numel() for p in model.parameters())
    report = {
        "model": model_name,
        "parameters": parameters,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "recipe": recipe,
        "gradient_checkpointing": not args.no_gradient_checkpointing,
        "versions": {"torch": torch.__version__},
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as out_dir:
        for method in args.methods:
            report["runs"].append(
                run(method, model, tokenizer, recipe, steps, device, out_dir, not args.no_gradient_checkpointing)
            )
    print(f"{model_name}: {parameters / 1e9:.2f} B parameters on {report['device']}")
    print(format_table(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
