"""Rollout sampling with the output projection at the revealed positions only, against the full head.

DAM's rollout call: ``sample_ctmc`` on K = 8 copies of one half-masked state (prompt + N completion tokens, N/2 of
them masked), policy and reference in the same loop, the copies' identical first step shared
(`GroupedRowsDenoiser`), one token per call, through the trainers' denoiser (`bind_left_padded`). "restricted" is
the default path (the denoisers compute their head at the revealed positions only); "full" gives the sampler plain
callables, so every call computes ``[rows, L, V]`` logits and the sampler gathers (the path before the restriction).

Models (tiny LLaDA-shaped, random weights, float32, CPU, one thread):

* ``char-vocab medium``: benchmarks/step_cost.py's model (hidden 256, 4 layers, a 18-token character vocabulary);
* ``MDLM-size vocab``: hidden 256, 2 layers, GPT-2's 50,257 tokens (MDLM's tokenizer);
* ``LLaDA-size vocab``: hidden 256, 2 layers, LLaDA's 126,464 tokens.

Per model and path: seconds per sampler step (policy + reference call, after a warm-up; the fastest of ``--repeats``
runs, full and restricted alternating, the machine being shared), and the peak memory the sampling adds: the process's
peak resident set (``VmHWM``, reset through ``/proc/self/clear_refs``) minus its resident set before sampling (the
largest over the runs), each run in a freshly forked process. The big-vocabulary models run the first
``--steps`` sampler steps only (every step costs about the same).

    python benchmarks/head_positions.py                # the three models (a few CPU minutes)
    python benchmarks/head_positions.py --quick        # small sizes, under a minute
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

from trl_dam.core import sample_ctmc
from trl_dam.core.shared_rows import GroupedRowsDenoiser
from trl_dam.models import (
    TinyLLaDAConfig,
    TinyLLaDAModelLM,
    build_char_tokenizer,
    build_tiny_masked_lm,
    resolve_adapter,
)

K = 8
PAD, MASK_ID = 0, 1  # the big-vocabulary models' pad and mask ids (no tokenizer: random prompt ids)
MODELS = {
    "char-vocab medium": dict(vocab=None, hidden=256, layers=4, prompt=8, completion=64, steps=None),
    "MDLM-size vocab": dict(vocab=50257, hidden=256, layers=2, prompt=64, completion=64, steps=8),
    "LLaDA-size vocab": dict(vocab=126464, hidden=256, layers=2, prompt=64, completion=64, steps=8),
}
QUICK = {
    "char-vocab medium": dict(vocab=None, hidden=64, layers=2, prompt=4, completion=16, steps=None),
    "MDLM-size vocab": dict(vocab=50257, hidden=64, layers=1, prompt=16, completion=16, steps=2),
}


def _models(spec: dict, seed: int):
    """(model, adapter, pad id, vocabulary size) of one benchmark model."""
    if spec["vocab"] is None:
        tokenizer = build_char_tokenizer("abcdefgh ")
        model = build_tiny_masked_lm(
            tokenizer, kind="llada", hidden_size=spec["hidden"], num_layers=spec["layers"], num_heads=4, seed=seed
        )
        return model, resolve_adapter(model, tokenizer), tokenizer.pad_token_id, len(tokenizer)
    config = TinyLLaDAConfig(
        vocab_size=spec["vocab"],
        d_model=spec["hidden"],
        n_layers=spec["layers"],
        n_heads=4,
        mlp_hidden_size=2 * spec["hidden"],
        mask_token_id=MASK_ID,
        pad_token_id=PAD,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TinyLLaDAModelLM(config).eval()
    return model, resolve_adapter(model), PAD, spec["vocab"]


def _state(spec: dict, vocab: int, mask_id: int) -> torch.Tensor:
    """K copies of one state: a prompt, then N completion tokens of which every other one is masked."""
    generator = torch.Generator().manual_seed(0)
    length = spec["prompt"] + spec["completion"]
    x = torch.randint(2, vocab, (1, length), generator=generator)
    x[x == mask_id] = 2
    x[0, spec["prompt"] :: 2] = mask_id
    return x.repeat_interleave(K, 0)


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field))


def _measure(spec: dict, restricted: bool, queue) -> None:
    torch.set_num_threads(1)
    (policy_model, adapter, pad, vocab), (reference_model, *_) = _models(spec, 0), _models(spec, 1)
    policy = adapter.bind_left_padded(policy_model, pad)
    reference = adapter.bind_left_padded(reference_model, pad)
    if not restricted:  # plain callables: the sampler gathers from full logits
        policy_fn, reference_fn = policy, reference
        policy, reference = (lambda x: policy_fn(x)), (lambda x: reference_fn(x))
    x = _state(spec, vocab, adapter.mask_token_id)

    def sample(max_steps):
        return sample_ctmc(
            GroupedRowsDenoiser(policy, K),
            x,
            adapter.mask_token_id,
            reference_logits_fn=GroupedRowsDenoiser(reference, K),
            generator=torch.Generator().manual_seed(1),
            max_steps=max_steps,
        )

    sample(2)  # warm-up: first-call allocations, the shared first step and one regular step
    before = _rss_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # reset the peak resident set to the current one
    tic = time.perf_counter()
    trajectory = sample(spec["steps"])
    seconds = time.perf_counter() - tic
    steps = int(trajectory.step_mask.any(0).sum())
    queue.put(
        dict(
            seconds_per_step=seconds / steps,
            steps=steps,
            peak_mib=(_rss_kb("VmHWM") - before) / 1024,
            final=trajectory.final.tolist(),
            logp_policy=trajectory.logp_policy.sum().item(),
        )
    )


def measure(spec: dict, restricted: bool) -> dict:
    """One measurement in a freshly forked process (its own peak resident set)."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=_measure, args=(spec, restricted, queue))
    process.start()
    result = queue.get()
    process.join()
    if process.exitcode:
        raise RuntimeError(f"measurement process exited with {process.exitcode}")
    return result


def _best(results: list[dict]) -> dict:
    """The fastest repeat's seconds (the least disturbed, on a shared machine) and the largest peak."""
    if any(r["final"] != results[0]["final"] for r in results):
        raise AssertionError("the same seeds sampled different tokens")
    return {
        **results[0],
        "seconds_per_step": min(r["seconds_per_step"] for r in results),
        "peak_mib": max(r["peak_mib"] for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, two models, under a minute")
    parser.add_argument("--steps", type=int, default=None, help="sampler steps measured on the big-vocabulary models")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per measurement (3; 1 with --quick)")
    parser.add_argument("--models", nargs="+", default=None, help="a subset of the model names")
    parser.add_argument("--json", default="outputs/head_positions.json")
    args = parser.parse_args()
    models = QUICK if args.quick else MODELS
    if args.models:
        unknown = set(args.models) - set(models)
        if unknown:
            raise SystemExit(f"unknown --models {sorted(unknown)}; choose from {list(models)}")
        models = {name: spec for name, spec in models.items() if name in args.models}
    runs = []
    for name, spec in models.items():
        if args.steps is not None and spec["steps"] is not None:
            spec = {**spec, "steps": args.steps}
        repeats = args.repeats or (1 if args.quick else 3)
        # Full and restricted alternate, so a change in the machine's load hits both alike.
        pairs = [(measure(spec, False), measure(spec, True)) for _ in range(repeats)]
        full, restricted = (_best([pair[i] for pair in pairs]) for i in (0, 1))
        if full["final"] != restricted["final"]:
            raise AssertionError(f"{name}: the restricted head sampled other tokens than the full one")
        vocab = spec["vocab"] or len(build_char_tokenizer("abcdefgh "))
        runs.append(
            dict(
                model=name,
                vocab=vocab,
                hidden=spec["hidden"],
                layers=spec["layers"],
                length=spec["prompt"] + spec["completion"],
                masked=spec["completion"] // 2,
                rows=K,
                steps=full["steps"],
                full=dict(seconds_per_step=full["seconds_per_step"], peak_mib=full["peak_mib"]),
                restricted=dict(seconds_per_step=restricted["seconds_per_step"], peak_mib=restricted["peak_mib"]),
                # one float32 logits tensor of a K-row call: [K, L, V] in full, [K, 1, V] restricted
                logits_mib_full=K * (spec["prompt"] + spec["completion"]) * vocab * 4 / 2**20,
                logits_mib_restricted=K * vocab * 4 / 2**20,
                same_tokens=True,
                logp_policy_difference=abs(full["logp_policy"] - restricted["logp_policy"]),
            )
        )
    header = (
        f"{'model':<18} {'V':>7} {'H':>4} {'layers':>6} {'L':>4} {'steps':>5}  {'s/step full':>11} "
        f"{'s/step restr.':>13} {'speed-up':>8}  {'peak MiB full':>13} {'peak MiB restr.':>15}  {'logits MiB full/restr. (computed)':>33}"
    )
    print(f"sample_ctmc, K = {K} rows from a half-masked state, policy + reference, 1 token per call, CPU, 1 thread")
    print(header)
    for run in runs:
        full, restricted = run["full"], run["restricted"]
        print(
            f"{run['model']:<18} {run['vocab']:>7} {run['hidden']:>4} {run['layers']:>6} {run['length']:>4} "
            f"{run['steps']:>5}  {full['seconds_per_step']:>11.4f} {restricted['seconds_per_step']:>13.4f} "
            f"{full['seconds_per_step'] / restricted['seconds_per_step']:>7.2f}x  {full['peak_mib']:>13.1f} "
            f"{restricted['peak_mib']:>15.1f}  {run['logits_mib_full']:>15.1f} / {run['logits_mib_restricted']:<15.2f}"
        )
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as out:
        json.dump(dict(rows=K, quick=args.quick, runs=runs), out, indent=2)


if __name__ == "__main__":
    main()
