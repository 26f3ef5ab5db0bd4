"""The `trl-dam` console script (`trl_dam.scripts.dam`): parsing, datasets and rewards, and a 1-step run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from types import SimpleNamespace

import pytest
from huggingface_hub import ModelCard
from legacy_remote_code import legacy_remote_code_fixture, write_legacy_checkpoint  # noqa: F401

from trl_dam.models import build_char_tokenizer, build_tiny_masked_lm
from trl_dam.rewards import strict_format_reward, sudoku_format_reward, sudoku_reward, xml_count_reward
from trl_dam.scripts.dam import main, make_parser, make_trainer, resolve_reward_funcs

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

PROMPTS = ["abc", "de", "fgh a", "h", "bb", "cab", "g", "ef"]
# Small enough for a CPU step; `--use_cpu --bf16 False` as every CPU test does.
TRAINING_FLAGS = [
    "--use_cpu",
    "--bf16",
    "False",
    "--report_to",
    "none",
    "--disable_tqdm",
    "True",
    "--per_device_train_batch_size",
    "4",
    "--num_generations",
    "2",
    "--max_completion_length",
    "4",
    "--beta",
    "0.05",
    "--logging_steps",
    "1",
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny LLaDA-shaped model and its tokenizer in a local folder, as `--model_name_or_path` takes it."""
    path = tmp_path_factory.mktemp("tiny-llada")
    tokenizer = build_char_tokenizer("abcdefgh 0123456789+-*/=<>:\n", chat_template=None)
    build_tiny_masked_lm(tokenizer, kind="llada", seed=0).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def parse(*args: str):
    return make_parser().parse_args_and_config(args=list(args))


def test_main_trains_one_step_and_writes_weights_and_card(tmp_path, model_dir, monkeypatch):
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": p, "target": "a"}) + "\n" for p in PROMPTS))
    # A reward by import path, resolved from the working directory as TRL's scripts do.
    (tmp_path / "my_rewards.py").write_text(
        "def frac_target(completions, target, **kwargs):\n"
        "    return [c.count(t) / len(c) if c else 0.0 for c, t in zip(completions, target)]\n"
    )
    monkeypatch.chdir(tmp_path)
    output_dir = tmp_path / "out"
    script_args, training_args, model_args = parse(
        "--model_name_or_path",
        model_dir,
        "--dataset_name",
        str(data),
        "--reward_funcs",
        "my_rewards.frac_target",
        "xml_count_reward",
        "--output_dir",
        str(output_dir),
        "--max_steps",
        "1",
        *TRAINING_FLAGS,
    )
    trainer = main(script_args, training_args, model_args)

    assert trainer.reward_func_names == ["frac_target", "xml_count_reward"]
    assert trainer.state.global_step == 1 and "loss" in trainer.state.log_history[0]
    files = set(os.listdir(output_dir))
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md", "training_args.bin"} <= files
    card = ModelCard.load(output_dir / "README.md")
    assert "dam" in card.data.tags and card.data.datasets is None  # a local file is named, not linked
    assert f"`{data}`" in card.text and "low_confidence_decode" in card.text
    assert 'prompt = tokenizer("What is 7 + 5?"' in card.text  # the tokenizer has no chat template


def test_task_shortcuts_build_dataset_and_rewards(tmp_path, model_dir):
    common = ["--model_name_or_path", model_dir, "--output_dir", str(tmp_path), *TRAINING_FLAGS]
    trainer = make_trainer(*parse("--task", "sudoku", "--max_train_samples", "6", *common))
    assert trainer.reward_funcs == [sudoku_reward, sudoku_format_reward]
    assert len(trainer.train_dataset) == 6 and {"prompt", "solution"} <= set(trainer.train_dataset.column_names)
    assert trainer.eval_dataset is None

    trainer = make_trainer(
        *parse(
            "--task",
            "countdown",
            "--max_train_samples",
            "4",
            "--max_eval_samples",
            "3",
            "--eval_strategy",
            "steps",
            "--reward_funcs",
            "countdown_reward",
            "strict_format_reward",
            *common,
        )
    )
    assert [f.__name__ for f in trainer.reward_funcs] == ["countdown_reward", "strict_format_reward"]
    assert (len(trainer.train_dataset), len(trainer.eval_dataset)) == (4, 3)
    assert {"numbers", "target"} <= set(trainer.train_dataset.column_names)


def test_resolve_reward_funcs(tmp_path):
    assert resolve_reward_funcs(["strict_format_reward", "sudoku"]) == [
        strict_format_reward,
        sudoku_reward,
        sudoku_format_reward,
    ]
    assert resolve_reward_funcs(["trl_dam.rewards.xml_count_reward"]) == [xml_count_reward]
    # Reward models stay strings; the trainer loads them as sequence classifiers.
    assert resolve_reward_funcs(["org/reward-model", str(tmp_path)]) == ["org/reward-model", str(tmp_path)]
    with pytest.raises(ValueError, match="Unknown reward function 'nope'"):
        resolve_reward_funcs(["nope"])


def test_yaml_config_and_lora_defaults(tmp_path):
    config = tmp_path / "recipe.yaml"
    config.write_text(
        "task: countdown\nbeta: 0.1\nnum_generations: 4\nper_device_train_batch_size: 8\nuse_peft: true\n"
    )
    script_args, training_args, model_args = parse(
        "--config", str(config), "--output_dir", str(tmp_path), "--beta", "0.2", "--use_cpu", "--bf16", "False"
    )
    assert script_args.task == "countdown" and training_args.num_generations == 4
    assert training_args.beta == 0.2  # the command line wins over the file
    assert model_args.use_peft and model_args.lora_task_type is None  # a plain PeftModel fits diffusion LMs


def test_console_script_help():
    executable = shutil.which("trl-dam")
    command = [executable] if executable else [sys.executable, "-m", "trl_dam.scripts.dam"]
    result = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    for flag in ("--model_name_or_path", "--task", "--reward_funcs", "--beta", "--use_peft"):
        assert flag in result.stdout


def test_console_entry_points_return_none(monkeypatch):
    """setuptools' wrapper runs `sys.exit(entry())`: anything but None (or 0) would be an error exit status."""
    from pathlib import Path

    import tomllib

    from trl_dam.scripts import dam, evaluate

    scripts = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"trl-dam": "trl_dam.scripts.dam:cli", "trl-dam-evaluate": "trl_dam.scripts.evaluate:cli"}
    for module in (dam, evaluate):
        monkeypatch.setattr(module, "main", lambda *args, **kwargs: object())  # a trainer, a summary dict
    monkeypatch.setattr(evaluate, "make_parser", lambda: SimpleNamespace(parse_args_and_config=lambda args: (None,)))
    assert dam.cli() is None and evaluate.cli([]) is None


GRPO_RECIPE = """\
model_name_or_path: {model}
output_dir: {out}
learning_rate: 1.0e-6
beta: 0.04
num_generations: 2
per_device_train_batch_size: 4
gradient_accumulation_steps: 2
max_completion_length: 4
use_cpu: true
bf16: false
report_to: none
"""


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ("generation_batch_size: 16", r"`generation_batch_size`.*per_device_prompts_per_generation"),
        ("steps_per_generation: 3", r"`steps_per_generation`.*inner_steps.*multiple of gradient_accumulation_steps"),
        ("scale_rewards: group", r"`scale_rewards='group'`.*no DAM equivalent"),
        ("scale_rewards: batch", r"`scale_rewards='batch'`.*no DAM equivalent"),
        ("loss_type: dapo", r"`loss_type`.*'dapo' is a GRPO loss type"),
        ("beta: 0.0", r"`beta` must be > 0"),
    ],
)
def test_grpo_yaml_fields_fail_naming_the_dam_equivalent(tmp_path, model_dir, extra, match):
    """A GRPO recipe's fields either map onto DAM's or fail with the DAM field named and beta's DAM meaning said."""
    recipe = tmp_path / "grpo.yaml"
    recipe.write_text(GRPO_RECIPE.format(model=model_dir, out=tmp_path / "out") + extra + "\n")
    with pytest.raises(ValueError, match=match) as error:
        parse("--config", str(recipe))
    assert "temperature on the reward" in str(error.value) and "not GRPO's KL coefficient" in str(error.value)


def test_grpo_yaml_fields_that_map(tmp_path, model_dir):
    """`steps_per_generation` (micro-steps) maps onto `inner_steps` (optimizer steps); `scale_rewards: none` is what
    DAM does; `beta` stays DAM's temperature. The command line takes the GRPO names too."""
    recipe = tmp_path / "grpo.yaml"
    recipe.write_text(
        GRPO_RECIPE.format(model=model_dir, out=tmp_path / "out") + "steps_per_generation: 4\nscale_rewards: none\n"
    )
    _, training_args, _ = parse("--config", str(recipe))
    assert training_args.inner_steps == 2 and training_args.beta == 0.04
    _, training_args, _ = parse("--config", str(recipe), "--steps_per_generation", "6", "--scale_rewards", "false")
    assert training_args.inner_steps == 3
    with pytest.raises(ValueError, match="per_device_prompts_per_generation"):
        parse("--config", str(recipe), "--generation_batch_size", "8")


def test_load_in_4bit_with_lora_reaches_from_pretrained(tmp_path, model_dir, monkeypatch):
    """`--load_in_4bit --use_peft`: TRL's `get_quantization_config` builds the BitsAndBytesConfig, it reaches the
    model loader with this process's device as `device_map`, and the LoRA weights are kept in bf16 as TRL does for
    quantized models. The loader is wrapped (bitsandbytes need not be installed): the model it returns is flagged
    4-bit."""
    import torch
    from transformers import BitsAndBytesConfig

    import trl_dam.trainers.model_setup as model_setup

    calls = []

    def recording_loader(path, **kwargs):
        calls.append(kwargs)
        kwargs = {k: v for k, v in kwargs.items() if k not in ("quantization_config", "device_map")}
        model = load_real(path, **kwargs)
        model.is_loaded_in_4bit = True
        return model

    load_real = model_setup.load_diffusion_lm
    monkeypatch.setattr(model_setup, "load_diffusion_lm", recording_loader)
    args = parse(
        "--model_name_or_path",
        model_dir,
        "--output_dir",
        str(tmp_path),
        "--task",
        "countdown",
        "--max_train_samples",
        "4",
        "--load_in_4bit",
        "--bnb_4bit_quant_type",
        "nf4",
        "--use_peft",
        "--lora_target_modules",
        "q_proj",
        "v_proj",
        *TRAINING_FLAGS,
    )
    trainer = make_trainer(*args)
    (kwargs,) = calls
    config = kwargs["quantization_config"]
    assert isinstance(config, BitsAndBytesConfig) and config.load_in_4bit and config.bnb_4bit_quant_type == "nf4"
    assert kwargs["device_map"] == {"": trainer.args.device}
    lora = {n: p for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert lora and all("lora_" in n and p.dtype == torch.bfloat16 for n, p in lora.items())


def test_command_lines_run_remote_code_only_with_the_flag(tmp_path, legacy_remote_code):
    """`trl-dam` and `trl-dam-evaluate` refuse a checkpoint that ships its code unless `--trust_remote_code` is given;
    with it the model and its (auto_map-declared) tokenizer load."""
    from trl import TrlParser

    from trl_dam.scripts.evaluate import EvaluateScriptArguments, load_model_and_tokenizer

    folder = tmp_path / "dream"
    write_legacy_checkpoint(folder, "dream", build_char_tokenizer("abcdefgh "))
    common = ["--model_name_or_path", str(folder), "--output_dir", str(tmp_path / "out"), "--task", "sudoku"]
    with pytest.raises(ValueError, match="pass trust_remote_code=True .*--trust_remote_code"):
        make_trainer(*parse(*common, "--max_train_samples", "8", *TRAINING_FLAGS))
    trainer = make_trainer(*parse(*common, "--max_train_samples", "8", "--trust_remote_code", *TRAINING_FLAGS))
    assert type(trainer.processing_class).__name__ == "DreamTokenizer"

    def evaluate_args(*flags):
        return TrlParser((EvaluateScriptArguments,)).parse_args_and_config(
            ["--model_name_or_path", str(folder), *flags]
        )[0]

    with pytest.raises(ValueError, match="pass trust_remote_code=True"):
        load_model_and_tokenizer(str(folder), evaluate_args())
    model, tokenizer = load_model_and_tokenizer(str(folder), evaluate_args("--trust_remote_code"))
    assert (type(model).__name__, type(tokenizer).__name__) == ("DreamModel", "DreamTokenizer")
