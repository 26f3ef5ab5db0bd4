"""The embedded Sudoku demo: tokenizer, teachers, pre-training, evaluation helpers, p* estimate, and the example
script end to end (shrunk) on CPU and offline."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest
import torch
from example_scripts import load_example_script
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM
from transformers.modeling_outputs import MaskedLMOutput

from trl_dam.evaluation import completion_texts, decode_completions
from trl_dam.metrics import load_metric
from trl_dam.models import load_diffusion_lm, resolve_adapter
from trl_dam.rewards.sudoku import sudoku_compact_format_reward, sudoku_reward
from trl_dam.sudoku_demo import (
    PretrainConfig,
    build_sudoku_model,
    build_sudoku_tokenizer,
    encode_digits,
    estimate_optimum_accuracy,
    evaluate_budgets,
    format_results_table,
    plot_training,
    pretrain_base,
    random_fill,
    row_heuristic_fill,
    score_completions,
    snis_mean,
    teacher_answer,
    total_rewards,
    training_figure,
)
from trl_dam.tasks.sudoku import (
    build_sudoku_prompt,
    generate_sudoku_dataset,
    generate_sudoku_puzzles,
    is_valid_sudoku_solution,
)

ROOT = Path(__file__).resolve().parents[1]
PUZZLE, SOLUTION = "1020320001300014", "1423324141322314"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tokenizer():
    return build_sudoku_tokenizer()


def load_example():
    return load_example_script("sudoku")


# ---------------------------------------------------------------------------------------------- tokenizer, teachers


def test_tokenizer_compact_prompt_and_digits(tokenizer, tmp_path):
    prompt = build_sudoku_prompt(PUZZLE, "compact")
    ids = tokenizer(prompt)["input_ids"]
    assert len(ids) == 18  # prefix token + 16 digits + newline
    assert tokenizer.decode(ids) == prompt
    digits = encode_digits(tokenizer, [SOLUTION])
    assert tokenizer.decode(digits[0]) == SOLUTION
    tokenizer.save_pretrained(tmp_path)
    assert AutoTokenizer.from_pretrained(tmp_path)(prompt)["input_ids"] == ids


def test_row_heuristic_fill_is_row_valid_and_imperfect():
    pairs = generate_sudoku_puzzles(200, seed=3, split="test")
    correct = total = 0
    for puzzle, solution in pairs:
        fill = row_heuristic_fill(puzzle)
        for row in range(4):
            assert sorted(fill[4 * row : 4 * row + 4]) == list("1234")
        assert all(p == "0" or p == f for p, f in zip(puzzle, fill))
        blanks = [i for i, c in enumerate(puzzle) if c == "0"]
        correct += sum(fill[i] == solution[i] for i in blanks)
        total += len(blanks)
    assert 0.4 < correct / total < 0.6  # about 49% on 8-blank puzzles
    assert row_heuristic_fill("0" * 16) == "1234" * 4


def test_teacher_answer_mixture():
    import random

    rng = random.Random(0)
    answers = [teacher_answer(PUZZLE, SOLUTION, "row_heuristic", 0.7, rng) for _ in range(2000)]
    assert set(answers) == {SOLUTION, row_heuristic_fill(PUZZLE)}
    assert abs(answers.count(SOLUTION) / 2000 - 0.3) < 0.05
    assert teacher_answer(PUZZLE, SOLUTION, "none", 1.0, rng) == SOLUTION
    noisy = random_fill(PUZZLE, rng)
    assert all(p == "0" or p == n for p, n in zip(PUZZLE, noisy)) and "0" not in noisy
    with pytest.raises(ValueError, match="corruption"):
        teacher_answer(PUZZLE, SOLUTION, "typo", 0.5, rng)
    with pytest.raises(ValueError, match="corruption"):
        PretrainConfig(corruption="typo")


# ---------------------------------------------------------------------------------------------- evaluation helpers


def test_score_completions_equals_metric():
    pairs = generate_sudoku_puzzles(6, seed=5, split="test")
    puzzles, solutions = [p for p, _ in pairs], [s for _, s in pairs]
    wrong = solutions[2].translate(str.maketrans("1234", "2341"))
    predictions = [
        solutions[0],  # solved
        f"<answer>{solutions[1]}</answer>",  # solved, in answer tags
        wrong,  # every blank wrong
        solutions[3][:10],  # truncated: padded with '0'
        "no digits here",  # unparseable
        row_heuristic_fill(puzzles[5]) + "9999",  # first 16 digits are read
    ]
    ours = score_completions(predictions, puzzles, solutions)
    metric = load_metric("sudoku_accuracy", keep_in_memory=True)
    reference = metric.compute(predictions=predictions, references=solutions, puzzles=puzzles)
    assert ours.cell_accuracy == pytest.approx(reference["cell_accuracy"])
    assert ours.puzzle_accuracy == pytest.approx(reference["puzzle_accuracy"]) == pytest.approx(2 / 6)
    assert ours.num_puzzles == 6
    rewards = sudoku_reward(None, predictions, puzzle=puzzles, solution=solutions)
    blanks = [p.count("0") for p in puzzles]
    assert ours.cell_accuracy == pytest.approx(sum(r * b for r, b in zip(rewards, blanks)) / sum(blanks))


def test_completion_texts_cut_at_eos_so_longer_budgets_parse(tokenizer):
    digits = encode_digits(tokenizer, [SOLUTION, SOLUTION])
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    tail = torch.tensor([[eos] * 16, [pad] + [eos] * 15])
    junk = encode_digits(tokenizer, ["4" * 16, "4" * 16])
    ids = torch.cat([digits, tail, junk], dim=1)  # a 3x canvas: digits, end-of-sequence tail, then anything
    texts = completion_texts(tokenizer, ids, [eos])
    assert texts == [SOLUTION, SOLUTION]  # after the first eos nothing counts; pad is a special token, dropped
    scores = score_completions(texts, [PUZZLE] * 2, [SOLUTION] * 2)
    assert scores.cell_accuracy == 1.0 and scores.puzzle_accuracy == 1.0
    assert sudoku_compact_format_reward(None, texts) == [0.5, 0.5]


def test_snis_mean_and_total_rewards():
    values = torch.tensor([[1.0, 0.0, 0.5], [2.0, 2.0, 2.0]])
    log_w = torch.tensor([[0.0, math.log(3.0), 0.0], [5.0, -1.0, 0.3]])
    assert snis_mean(values, log_w).tolist() == pytest.approx([1.5 / 5, 2.0])
    texts = [SOLUTION, "1" * 16, "x"]
    total = total_rewards(
        [sudoku_reward, sudoku_compact_format_reward],
        [1.0, 2.0],
        ["p"] * 3,
        texts,
        {"puzzle": [PUZZLE] * 3, "solution": [SOLUTION] * 3},
    )
    expected = [
        r + 2.0 * f
        for r, f in zip(
            sudoku_reward(None, texts, puzzle=[PUZZLE] * 3, solution=[SOLUTION] * 3),
            sudoku_compact_format_reward(None, texts),
        )
    ]
    assert total.tolist() == pytest.approx(expected)


class FixedLogitsForMaskedLM(BertForMaskedLM):
    """A masked LM whose completion logits do not depend on the input: digit ``d`` at completion cell ``j`` has
    probability ``probs[j, d]``, so its completions are independent cells with a known law."""

    def __init__(self, config, probs: torch.Tensor, digit_ids: torch.Tensor):
        super().__init__(config)
        self.probs, self.digit_ids = probs, digit_ids

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, **kwargs):
        batch, length = input_ids.shape
        logits = torch.full((batch, length, self.config.vocab_size), -1e4)
        cells = torch.full((length, 4), -1e4)
        cells[-16:] = self.probs.log()
        logits[:, :, self.digit_ids] = cells
        return MaskedLMOutput(logits=logits)


def test_optimum_estimate_matches_exact_value_on_a_factorised_toy(tokenizer):
    """With independent cells and the blank-cell reward r = (1/B) sum_j 1[x_j = s_j], p* factorises too:
    p*(cell j correct) = q_j e^c / (q_j e^c + 1 - q_j), c = 1 / (B beta). The importance-sampling estimate must find
    it (and the plain base accuracy)."""
    generator = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(16, 4, generator=generator) * 1.5, dim=1)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8
    )
    model = FixedLogitsForMaskedLM(config, probs, encode_digits(tokenizer, ["1234"])[0]).eval()
    rows = generate_sudoku_dataset(2, seed=7, split="test", prompt_style="compact")
    beta, num_samples = 0.1, 3000
    estimate = estimate_optimum_accuracy(
        model, tokenizer, rows, 16, beta, [sudoku_reward], num_samples=num_samples, batch_size=2048, seed=1
    )
    exact_base = exact_opt = blanks = 0.0
    for puzzle, solution in zip(rows["puzzle"], rows["solution"]):
        cells = [j for j, char in enumerate(puzzle) if char == "0"]
        c = 1.0 / (len(cells) * beta)
        for j in cells:
            q = float(probs[j, int(solution[j]) - 1])
            exact_base += q
            exact_opt += q * math.exp(c) / (q * math.exp(c) + 1 - q)
        blanks += len(cells)
    assert estimate.base_cell_accuracy == pytest.approx(exact_base / blanks, abs=0.02)
    assert estimate.cell_accuracy == pytest.approx(exact_opt / blanks, abs=0.025)  # seeds 0-5: within 0.01
    assert exact_opt / blanks > exact_base / blanks + 0.15  # the toy is not trivial: p* is far from the base
    assert 0.0 < estimate.ess_fraction < 1.0 and estimate.num_samples == num_samples


# ---------------------------------------------------------------------------------------------- pre-training + decoding


def test_pretraining_learns_and_decoders_run_at_every_budget(tokenizer):
    model = build_sudoku_model(tokenizer, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
    pairs = generate_sudoku_puzzles(200, seed=0)
    config = PretrainConfig(steps=40, batch_size=16, warmup_steps=5, budget_multiples=(1, 2))
    result = pretrain_base(model, tokenizer, pairs, config, progress=False)
    assert len(result.losses) == 40 and result.cpu_seconds > 0
    assert sum(result.losses[-10:]) < sum(result.losses[:10])
    assert not model.training
    rows = generate_sudoku_dataset(8, seed=1, split="test", prompt_style="compact")
    results = evaluate_budgets(model, tokenizer, rows, [16, 32], decoders=("low_confidence", "ctmc"))
    for decoder in ("low_confidence", "ctmc"):
        for budget in (16, 32):
            assert 0.0 <= results[decoder][budget].cell_accuracy <= 1.0
    table = format_results_table({"base": results, "finetuned": results}, 16)
    assert "greedy (d1)" in table and "32 (2x)" in table
    texts = decode_completions(model, tokenizer, rows["prompt"][:2], 32, decoder="ctmc", num_samples=3)
    assert len(texts) == 6


def test_plot_training(tmp_path):
    history = [{"step": 5, "reward": 0.5, "rewards/sudoku_reward/mean": 0.4}, {"step": 10, "reward": 0.9}]
    accuracy = [
        {"step": 0, "cell_accuracy": 0.5, "puzzle_accuracy": 0.05},
        {"step": 10, "cell_accuracy": 0.9, "puzzle_accuracy": 0.6},
    ]
    path = plot_training(history, accuracy, tmp_path / "plot.png", optimum_cell_accuracy=0.95)
    assert path.stat().st_size > 1000

    figure = training_figure(history, accuracy, optimum_cell_accuracy=0.8)
    right = figure.axes[1]
    labels = [text.get_text() for text in right.get_legend().get_texts()]
    assert labels == [
        "model, greedy decoding: blank cells",
        "model, greedy decoding: puzzles solved",
        "p*, sampled (estimate): blank cells",
    ]
    greedy, _, sampled = right.get_lines()
    assert list(greedy.get_ydata()) == [50.0, 90.0] and list(sampled.get_ydata()) == [80.0, 80.0]
    assert any("can exceed" in text.get_text() for text in right.texts)  # the greedy line does exceed p* here


# ---------------------------------------------------------------------------------------------- the example script


def test_example_defaults_follow_the_path():
    example = load_example()
    script_args, training_args, model_args = example.parse_args([])
    assert model_args.model_name_or_path is None
    assert training_args.beta == 0.05 and training_args.max_completion_length == 16
    assert training_args.num_generations == 8 and training_args.output_dir == "outputs/sudoku-dam-tiny"
    assert script_args.eval_budget_multiples == [1, 2, 4]

    script_args, training_args, model_args = example.parse_args(
        ["--model_name_or_path", "GSAI-ML/LLaDA-8B-Instruct", "--use_peft", "--beta", "0.1", "--use_cpu", "true"]
    )  # use_cpu only because bf16 (the GPU default) fails TrainingArguments' validation on a CPU-only machine
    assert training_args.beta == 0.1  # the command line wins over the path's defaults
    assert training_args.learning_rate == 3e-6 and training_args.num_generations == 12
    assert training_args.max_completion_length == 128 and training_args.tokens_per_step == 2
    assert training_args.max_grad_norm == 0.2 and training_args.bf16
    assert model_args.dtype == "bfloat16" and model_args.lora_r == 128 and model_args.lora_alpha == 64
    from trl import get_peft_config

    peft_config = get_peft_config(model_args)
    assert peft_config.r == 128 and "q_proj" in peft_config.target_modules


SHRUNK_DEMO = [
    "--pretrain_steps", "30",
    "--pretrain_batch_size", "16",
    "--pretrain_num_puzzles", "200",
    "--tiny_hidden_size", "32",
    "--tiny_num_layers", "2",
    "--tiny_num_heads", "2",
    "--tiny_intermediate_size", "64",
    "--num_train_puzzles", "32",
    "--num_eval_puzzles", "8",
    "--eval_budget_multiples", "1", "2",
    "--optimum_num_samples", "4",
    "--optimum_num_puzzles", "4",
    "--heldout_eval_steps", "1",
    "--max_steps", "2",
    "--per_device_train_batch_size", "16",
    "--num_generations", "4",
    "--logging_steps", "1",
    "--disable_tqdm", "true",
]  # fmt: skip


def test_shrunk_demo_end_to_end(tmp_path):
    example = load_example()
    output_dir = tmp_path / "out"
    args = example.parse_args([*SHRUNK_DEMO, "--output_dir", str(output_dir)])
    summary = example.main(*args)

    results = json.loads((output_dir / "results.json").read_text())
    for name in ("base", "finetuned"):
        assert set(results["results"][name]["low_confidence"]) == {"16", "32"}
        assert set(results["results"][name]["ctmc"]) == {"16"}  # sampled at 1x only by default
    assert 0.0 <= results["optimum"]["cell_accuracy"] <= 1.0
    assert [h["step"] for h in results["heldout_history"]] == [0, 1, 2]
    assert (output_dir / "training.png").stat().st_size > 1000
    assert summary["results"] == results["results"]

    model = load_diffusion_lm(output_dir)
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    assert resolve_adapter(model, tokenizer).mask_token_id == tokenizer.mask_token_id
    rows = generate_sudoku_dataset(4, seed=1, split="test", prompt_style="compact")
    reloaded = evaluate_budgets(model, tokenizer, rows, [16])
    assert 0.0 <= reloaded["low_confidence"][16].cell_accuracy <= 1.0
    assert all(is_valid_sudoku_solution(s) for s in rows["solution"])


def test_hub_model_path_with_lora_end_to_end(tmp_path):
    """The `--model_name_or_path ... --use_peft` path on a local tiny LLaDA-shaped checkpoint: tokenizer and model
    loaded from disk, LoRA from `trl.get_peft_config`, two tokens per CTMC step, base = adapters disabled."""
    from trl_dam.models import build_char_tokenizer, build_tiny_masked_lm

    checkpoint = tmp_path / "tiny-llada"
    char_tokenizer = build_char_tokenizer("0123456789abcdefghijklmnopqrstuvwxyz :\n")
    build_tiny_masked_lm(char_tokenizer, kind="llada", seed=0).save_pretrained(checkpoint)
    char_tokenizer.save_pretrained(checkpoint)
    example = load_example()
    output_dir = tmp_path / "out"
    script_args, training_args, model_args = example.parse_args(
        [
            *("--model_name_or_path", str(checkpoint), "--use_peft", "--lora_target_modules", "q_proj", "v_proj"),
            *("--prompt_style", "compact", "--dtype", "float32", "--bf16", "false", "--output_dir", str(output_dir)),
            *("--max_completion_length", "16", "--diffusion_steps", "8", "--num_generations", "2"),
            *("--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1", "--max_steps", "1"),
            *("--num_train_puzzles", "8", "--num_eval_puzzles", "4", "--eval_budget_multiples", "1", "2"),
            *("--optimum_num_samples", "2", "--optimum_num_puzzles", "2", "--disable_tqdm", "true"),
            *("--save_strategy", "no", "--report_to", "none"),
        ]
    )
    assert training_args.tokens_per_step == 2 and model_args.lora_r == 128
    summary = example.main(script_args, training_args, model_args)
    assert set(summary["results"]["base"]["low_confidence"]) == {"16", "32"}
    assert (output_dir / "adapter_config.json").exists()
    assert (output_dir / "results.json").exists()


@pytest.mark.slow
def test_accelerate_launch_single_process_cpu(tmp_path):
    """`accelerate launch examples/sudoku.py` (no accelerate config) runs the shrunk demo in one CPU process."""
    import shutil
    import subprocess

    if shutil.which("accelerate") is None:
        pytest.skip("the accelerate CLI is not installed")
    output_dir = tmp_path / "out"
    command = [
        "accelerate",
        "launch",
        str(ROOT / "examples" / "sudoku.py"),
        *SHRUNK_DEMO,
        "--output_dir",
        str(output_dir),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "greedy (d1)" in result.stdout and (output_dir / "results.json").exists()
