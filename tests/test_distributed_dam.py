"""`DAMTrainer` under `accelerate launch` with 2 CPU processes reproduces the single-process first update.

Each test launches the `trl-dam` script (this file is the worker, see the bottom) with one of the shipped
`examples/accelerate_configs/` files for one optimizer step, and compares it with the same step computed in this
process, rank by rank: rank ``r`` of the launch trains on the ``r``-th slice of the global batch with the sampler
streams seeded ``seed + r``, so the single-process reference builds both slices with those streams, averages the two
losses and gradients, and takes the SGD step. Checked: the logged loss and gradient norm, the saved weights, and each
rank's checkpointed sampler state (RNG and replay buffer: one buffer per process, holding its own prompts).

DeepSpeed runs on the CPU (`DS_ACCELERATOR=cpu`, gloo); the ZeRO-3 run uses a model whose parameters are really
sharded (loaded under `zero.Init`), so the reference model and the sampling gather paths are exercised.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

CONFIGS = Path(__file__).resolve().parents[1] / "examples" / "accelerate_configs"
PROMPTS = ["abc", "de", "fgh a", "h", "bb", "cab", "g", "ef"]
REWARDS_MODULE = '''
def early_letters(completions, **kwargs):
    """Completion-dependent and rarely constant, so the K rollouts of a state get different weights."""
    return [sum(c.count(letter) for letter in "abcd") / 6 for c in completions]
'''
SEED = 0
LEARNING_RATE = 0.1


def script_flags(model_dir: str, data: str, output_dir: str) -> list[str]:
    """One SGD step (the update is then exactly -lr x the averaged gradient), checkpointed after it."""
    return [
        "--model_name_or_path",
        model_dir,
        "--dataset_name",
        data,
        "--reward_funcs",
        "dist_rewards.early_letters",
        "--output_dir",
        output_dir,
        "--use_cpu",
        "--bf16",
        "False",
        "--report_to",
        "none",
        "--disable_tqdm",
        "True",
        "--max_steps",
        "1",
        "--per_device_train_batch_size",
        "8",
        "--num_generations",
        "4",
        "--max_completion_length",
        "6",
        "--beta",
        "0.05",
        "--optim",
        "sgd",
        "--learning_rate",
        str(LEARNING_RATE),
        "--lr_scheduler_type",
        "constant",
        "--max_grad_norm",
        "1e6",  # never clips, but makes every backend compute and log the norm
        "--logging_steps",
        "1",
        "--save_strategy",
        "steps",
        "--save_steps",
        "1",
        "--save_only_model",
        "False",
        "--seed",
        str(SEED),
    ]


#: Tiny models by name. "dream-wide" has 320 x 320 projections: above DeepSpeed's default persistence threshold
#: (1e5 elements), so under ZeRO-3 they stay sharded in the frozen reference as well as in the policy.
MODELS = {
    "llada": {"kind": "llada"},
    "dream-wide": {"kind": "dream", "hidden_size": 320, "num_layers": 1, "intermediate_size": 320},
}


@pytest.fixture(scope="module")
def setup(request, tmp_path_factory):
    """A tiny model folder, a prompts file and a reward module in a fresh working directory."""
    from trl_dam.models import build_char_tokenizer, build_tiny_masked_lm

    root = tmp_path_factory.mktemp(f"dist-{request.param}")
    tokenizer = build_char_tokenizer("abcdefgh ")
    build_tiny_masked_lm(tokenizer, seed=0, **MODELS[request.param]).save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    (root / "prompts.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    (root / "dist_rewards.py").write_text(REWARDS_MODULE)
    return SimpleNamespace(root=root, model=str(root / "model"), data=str(root / "prompts.jsonl"))


@pytest.fixture(scope="module")
def single_process(setup):
    """The first update computed in this process, emulating the two ranks one after the other."""
    from trl_dam.core import ReplayBuffer
    from trl_dam.scripts.dam import make_parser, make_trainer

    cwd = os.getcwd()
    os.chdir(setup.root)  # the reward is imported from the working directory
    try:
        losses, grads, states = [], [], []
        for rank in range(2):
            parsed = make_parser().parse_args_and_config(
                args=script_flags(setup.model, setup.data, str(setup.root / f"single-{rank}"))
            )
            trainer = make_trainer(*parsed)
            trainer.generator.manual_seed(SEED + rank)
            trainer.replay_buffer = ReplayBuffer(trainer.args.buffer_capacity, seed=SEED + rank)
            sampler = trainer._get_train_sampler()
            sampler.set_epoch(0)
            order = list(sampler)
            per_rank = trainer.args.prompts_per_generation
            rows = [trainer.train_dataset[i] for i in order[rank * per_rank : (rank + 1) * per_rank]]
            trainer.model.train()
            inputs = trainer._prepare_inputs(rows)
            params = dict(trainer.model.named_parameters())
            loss = trainer.compute_loss(trainer.model, inputs)
            losses.append(float(loss.detach()))
            grads.append(dict(zip(params, torch.autograd.grad(loss, list(params.values())))))
            states.append(trainer._sampler_state_dict())
    finally:
        os.chdir(cwd)
    grad = {name: (grads[0][name] + grads[1][name]) / 2 for name in grads[0]}
    weights = {name: (p - LEARNING_RATE * grad[name]).detach() for name, p in params.items()}
    grad_norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grad.values()])))
    return SimpleNamespace(
        loss=sum(losses) / 2, rank_losses=losses, grad_norm=grad_norm, weights=weights, states=states
    )


def launch(setup, config: str, output_dir: Path) -> subprocess.CompletedProcess:
    with socket.socket() as sock:  # a free port: other test runs may share the machine
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    accelerate = shutil.which("accelerate")
    launcher = [accelerate, "launch"] if accelerate else [sys.executable, "-m", "accelerate.commands.launch"]
    command = [
        *launcher,
        "--config_file",
        str(CONFIGS / config),
        "--num_processes",
        "2",
        "--mixed_precision",
        "no",
        "--main_process_port",
        str(port),
        __file__,
        *script_flags(setup.model, setup.data, str(output_dir)),
    ]
    env = {
        **os.environ,
        "DS_ACCELERATOR": "cpu",
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "OMP_NUM_THREADS": "1",
        "TRL_EXPERIMENTAL_SILENCE": "1",
    }
    return subprocess.run(command, cwd=setup.root, env=env, capture_output=True, text=True, timeout=540)


def assert_matches_single_process(output_dir: Path, expected) -> None:
    from safetensors.torch import load_file

    checkpoint = output_dir / "checkpoint-1"
    log = json.loads((checkpoint / "trainer_state.json").read_text())["log_history"][0]
    # The first update's loss: the mean over ranks of each rank's mean loss, as one process over both slices.
    assert log["loss"] == pytest.approx(expected.loss, rel=1e-5, abs=1e-7), (log["loss"], expected.rank_losses)
    assert log["grad_norm"] == pytest.approx(expected.grad_norm, rel=1e-4)
    weights = load_file(output_dir / "model.safetensors")
    assert set(weights) == set(expected.weights)
    for name, value in expected.weights.items():
        torch.testing.assert_close(weights[name], value, atol=1e-6, rtol=1e-5, msg=name)
    for rank, state in enumerate(expected.states):
        saved = torch.load(checkpoint / f"sampler_state_{rank}.pt", weights_only=True)
        assert torch.equal(saved["generator"], state["generator"]), rank
        ours, theirs = saved["replay_buffer"]["items"], state["replay_buffer"]["items"]
        assert len(ours) == len(theirs) > 0
        for a, b in zip(ours, theirs):
            assert torch.equal(a["prompt_ids"], b["prompt_ids"])
            assert torch.equal(a["completion_ids"], b["completion_ids"])


# (accelerate config, tiny model, needs deepspeed).
CASES = [
    pytest.param("deepspeed_zero2.yaml", "llada", True, id="zero2"),
    pytest.param("deepspeed_zero3.yaml", "dream-wide", True, id="zero3"),
    pytest.param("multi_gpu.yaml", "llada", False, id="ddp"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("config", "setup", "needs_deepspeed"), CASES, indirect=["setup"])
def test_two_processes_match_single_process(setup, single_process, tmp_path, config, needs_deepspeed):
    if needs_deepspeed:
        pytest.importorskip("deepspeed", reason="pip install 'trl-dam[deepspeed]'")
    result = launch(setup, config, tmp_path / "out")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    assert_matches_single_process(tmp_path / "out", single_process)


if __name__ == "__main__":  # the worker that `launch` starts on every rank
    if os.environ.get("ACCELERATE_USE_DEEPSPEED") == "true":
        import deepspeed.ops

        # DeepSpeed's CPU accelerator JIT-compiles a shared-memory all-reduce kernel when its communication backend
        # starts (minutes on a small machine); gloo is enough here, so mark that op unavailable.
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    from trl_dam.scripts.dam import main

    main()
