"""d1's benchmark protocol (`trl_dam.evaluation`) and the `trl-dam-evaluate` script: prompt prefill, exact scores of an
oracle denoiser at every generation length, the number of denoiser calls, and the script end to end on tiny models
(full checkpoints, a LoRA adapter folder, generated and locally loaded tasks)."""

from __future__ import annotations

import json
import string

import pytest
import torch
from sudoku_alternatives import THREE_SOLUTION_PUZZLE, THREE_SOLUTIONS, TWO_SOLUTION_PUZZLE, TWO_SOLUTIONS
from transformers import BertForMaskedLM
from transformers.modeling_outputs import MaskedLMOutput

from trl_dam.evaluation import (
    TASK_EVALUATIONS,
    decode_completions,
    evaluate_generation_lengths,
    format_length_table,
    load_eval_dataset,
    tokenize_prompts,
)
from trl_dam.metrics import load_metric
from trl_dam.models import build_char_tokenizer, build_tiny_masked_lm, load_diffusion_lm
from trl_dam.sudoku_demo import SUDOKU_PROMPT_PREFIX, build_sudoku_model, build_sudoku_tokenizer
from trl_dam.tasks import (
    countdown_is_correct,
    gsm8k_is_correct,
    load_countdown,
    load_sudoku,
    solve_countdown,
    solve_sudoku,
)


def load_script():
    from trl_dam.scripts import evaluate

    return evaluate


# ---------------------------------------------------------------------------------------------- prompts


def test_tokenize_prompts_appends_the_prefill_after_the_chat_template():
    tokenizer = build_char_tokenizer(string.printable)
    chat = [[{"role": "user", "content": "2+2?"}], [{"role": "user", "content": "a longer question"}]]
    plain_ids = tokenize_prompts(tokenizer, chat)
    prefilled = tokenize_prompts(tokenizer, chat, prefill="<reasoning>")
    reasoning = tokenizer("<reasoning>", add_special_tokens=False)["input_ids"]
    for ids, with_prefill in zip(plain_ids, prefilled):
        assert with_prefill == ids + reasoning  # the template's own tokens once, then the prefill
    rendered = tokenizer.apply_chat_template(chat[0], add_generation_prompt=True, tokenize=False)
    assert tokenizer.decode(prefilled[0]) == rendered + "<reasoning>"
    assert tokenize_prompts(tokenizer, ["ab"], prefill="c") == tokenize_prompts(tokenizer, ["abc"])


# ---------------------------------------------------------------------------------------------- oracle scores


class SudokuOracleForMaskedLM(BertForMaskedLM):
    """Reads the puzzle from the compact prompt and puts all its mass on the solved grid (then end-of-sequence),
    except a blank cell 0, where it writes a wrong digit; counts its forward calls."""

    def __init__(self, config, tokenizer):
        super().__init__(config)
        self.prefix_id = tokenizer.convert_tokens_to_ids(SUDOKU_PROMPT_PREFIX)
        self.digit_ids = tokenizer.convert_tokens_to_ids(list("0123456789"))
        self.id_to_digit = {token: str(d) for d, token in enumerate(self.digit_ids)}
        self.eos_id = tokenizer.eos_token_id
        self.calls = 0

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        self.calls += 1
        batch, length = input_ids.shape
        logits = torch.zeros(batch, length, self.config.vocab_size)
        for row in range(batch):
            start = (input_ids[row] == self.prefix_id).nonzero()[0, 0].item() + 1
            puzzle = "".join(self.id_to_digit[t] for t in input_ids[row, start : start + 16].tolist())
            answer = list(solve_sudoku(puzzle))
            if puzzle[0] == "0":
                answer[0] = str(int(answer[0]) % 4 + 1)  # a wrong digit
            completion = start + 17  # after the 16 digits and the newline
            for cell, digit in enumerate(answer):
                logits[row, completion + cell, self.digit_ids[int(digit)]] = 20.0
            logits[row, completion + 16 :, self.eos_id] = 20.0
        return MaskedLMOutput(logits=logits)


@pytest.mark.parametrize("lengths, block_length", [((16, 32, 64), 16), ((32, 64), 32)])
def test_oracle_scores_are_exact_at_every_length_with_length_over_two_calls(lengths, block_length):
    tokenizer = build_sudoku_tokenizer()
    config = build_sudoku_model(tokenizer, hidden_size=8, num_layers=1, num_heads=1).config
    oracle = SudokuOracleForMaskedLM(config, tokenizer).eval()
    rows = load_eval_dataset("sudoku", 12, prompt_style="compact")
    results = evaluate_generation_lengths(
        oracle, tokenizer, "sudoku", rows, lengths, block_length=block_length, batch_size=5
    )
    blanks = sum(p.count("0") for p in rows["puzzle"])
    first_cell_blank = sum(p[0] == "0" for p in rows["puzzle"])
    assert 0 < first_cell_blank < 12  # both kinds of puzzle are present
    for length in lengths:
        scores = results[length].scores
        assert scores["cell_accuracy"] == pytest.approx((blanks - first_cell_blank) / blanks)
        assert scores["puzzle_accuracy"] == pytest.approx((12 - first_cell_blank) / 12)
        assert results[length].main_score == scores["cell_accuracy"]
        assert all(len(text) == 16 for text in results[length].completions)  # cut at the first end-of-sequence
    batches = -(-12 // 5)
    assert oracle.calls == batches * sum(length // 2 for length in lengths)  # d1: length / 2 denoiser calls

    table = format_length_table({"oracle": {"sudoku": results}, "again": {"sudoku": results}})
    expected = 100 * (blanks - first_cell_blank) / blanks
    assert f"{expected:.1f}" in table.splitlines()[3] and table.splitlines()[3].startswith("oracle")
    assert "sudoku: cell_accuracy" in table.splitlines()[-1] and all(
        str(length) in table.splitlines()[1] for length in lengths
    )


def test_invalid_lengths_and_missing_columns_are_named():
    tokenizer = build_sudoku_tokenizer()
    model = build_sudoku_model(tokenizer, hidden_size=8, num_layers=1, num_heads=1)
    rows = load_eval_dataset("sudoku", 2, prompt_style="compact")
    with pytest.raises(ValueError, match="not a multiple of the block length"):
        evaluate_generation_lengths(model, tokenizer, "sudoku", rows, [48], block_length=32)
    with pytest.raises(ValueError, match="do not split evenly"):
        evaluate_generation_lengths(model, tokenizer, "sudoku", rows, [64], block_length=32, tokens_per_step=64)
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['puzzle'\]"):
        evaluate_generation_lengths(model, tokenizer, "sudoku", rows.remove_columns("puzzle"), [16])
    with pytest.raises(ValueError, match="Unknown task 'chess'"):
        load_eval_dataset("chess")


# ---------------------------------------------------------------------------------------------- fixed test sets

UNIQUE_PUZZLE, UNIQUE_SOLUTION = "0030001221004300", "1234341221434321"  # 9 blanks, cell 0 blank, one solution


def write_d1_sudoku_csv(path):
    """d1's layout: `Puzzle,Solution` header, 16 digits, 0 for blanks. The stored solutions of the 2- and 3-solution
    puzzles are not the lexicographically first one (the one `solve_sudoku`, hence the oracle, writes)."""
    rows = [(UNIQUE_PUZZLE, UNIQUE_SOLUTION), (TWO_SOLUTION_PUZZLE, TWO_SOLUTIONS[1])]
    rows.append((THREE_SOLUTION_PUZZLE, THREE_SOLUTIONS[1]))
    path.write_text("Puzzle,Solution\n" + "".join(f"{puzzle},{solution}\n" for puzzle, solution in rows))
    return rows


def write_d1_countdown_jsonl(path):
    """d1's test layout: the numbers comma-separated in `input`, the target in `output`, both strings."""
    problems = [([30, 100, 93], 23), ([44, 19, 35], 98), ([3, 7, 2], 17)]
    path.write_text(
        "".join(json.dumps({"input": ",".join(map(str, n)), "output": str(t)}) + "\n" for n, t in problems)
    )
    return problems


def test_d1_sudoku_file_is_loaded_and_the_oracle_scored_by_both_accuracies(tmp_path):
    rows = write_d1_sudoku_csv(tmp_path / "4x4_test_sudoku.csv")
    loaded = load_eval_dataset("sudoku", dataset_name=str(tmp_path / "4x4_test_sudoku.csv"), prompt_style="compact")
    assert list(zip(loaded["puzzle"], loaded["solution"])) == rows  # the CSV reader's integer lost the leading 0
    assert loaded["num_blanks"] == [9, 4, 8] and loaded["prompt"][1] == f"4x4 sudoku: {TWO_SOLUTION_PUZZLE}\n"
    assert load_eval_dataset("sudoku", 2, dataset_name=str(tmp_path / "4x4_test_sudoku.csv"))["puzzle"] == [
        UNIQUE_PUZZLE,
        TWO_SOLUTION_PUZZLE,
    ]

    tokenizer = build_sudoku_tokenizer()
    config = build_sudoku_model(tokenizer, hidden_size=8, num_layers=1, num_heads=1).config
    oracle = SudokuOracleForMaskedLM(config, tokenizer).eval()
    scores = evaluate_generation_lengths(oracle, tokenizer, "sudoku", loaded, [16], block_length=16)[16].scores
    # the oracle: 8 of 9 (cell 0 wrong) on the unique puzzle; the first solution elsewhere, which differs from the
    # stored one in 4 of 4 and 4 of 8 empty cells
    assert scores == {
        "cell_accuracy": pytest.approx((8 + 0 + 4) / 21),
        "valid_cell_accuracy": pytest.approx((8 + 4 + 8) / 21),
        "puzzle_accuracy": 0.0,
        "valid_puzzle_accuracy": pytest.approx(2 / 3),
    }


def test_d1_sudoku_file_errors_name_the_culprit(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("Grid,Solution\n1234341240202040,1234341241232341\n")
    with pytest.raises(ValueError, match=r"no puzzle column: expected one of \('Puzzle', 'puzzle'\)"):
        load_sudoku("csv", data_files=str(bad))
    bad.write_text("Puzzle,Solution\n1234341240202040,1234341241232341\n12343412402020x0,1234341241232341\n")
    with pytest.raises(ValueError, match="Row 1, column 'Puzzle': expected 16 characters from '01234'"):
        load_sudoku("csv", data_files=str(bad))
    bad.write_text("puzzle,solution\n1234341240202040,4234341241232341\n")
    with pytest.raises(ValueError, match="Row 0: the solution 4234341241232341 changes a given"):
        load_sudoku("csv", data_files=str(bad))


def test_d1_countdown_file_and_hub_layout_are_loaded_and_scored(tmp_path):
    problems = write_d1_countdown_jsonl(tmp_path / "countdown_cd3_test.jsonl")
    loaded = load_eval_dataset("countdown", dataset_name=str(tmp_path / "countdown_cd3_test.jsonl"))
    assert list(zip(loaded["numbers"], loaded["target"])) == problems
    assert "Numbers: [30, 100, 93]\nTarget: 23" in loaded["prompt"][0][0]["content"]  # d1's evaluation prompt
    hub_layout = tmp_path / "train.jsonl"  # the hub training set's columns
    hub_layout.write_text("".join(json.dumps({"nums": n, "target": t}) + "\n" for n, t in problems))
    from_hub_layout = load_countdown("json", data_files=str(hub_layout), prompt_style="compact")
    assert from_hub_layout["numbers"] == loaded["numbers"] and from_hub_layout["target"] == loaded["target"]
    assert from_hub_layout["prompt"][2] == "countdown: 3 7 2 -> 17\n"

    oracle = [f"<answer>\\boxed{{{solve_countdown(n, t)}}}</answer>" for n, t in problems]
    metric = load_metric("countdown_accuracy", keep_in_memory=True)
    columns = {"references": loaded["target"], "numbers": loaded["numbers"]}
    assert metric.compute(predictions=oracle, **columns) == {"accuracy": 1.0}
    assert metric.compute(predictions=[oracle[0], "<answer>3+7+2</answer>", oracle[0]], **columns) == {
        "accuracy": 1 / 3
    }
    (tmp_path / "bad.jsonl").write_text(json.dumps({"input": "30,x", "output": "23"}) + "\n")
    with pytest.raises(ValueError, match="Row 0, column 'input': expected numbers"):
        load_countdown("json", data_files=str(tmp_path / "bad.jsonl"))
    (tmp_path / "bad.jsonl").write_text(json.dumps({"numbers_list": [1, 2], "goal": 3}) + "\n")
    with pytest.raises(ValueError, match="expected one of the layouts"):
        load_countdown("json", data_files=str(tmp_path / "bad.jsonl"))


# ---------------------------------------------------------------------------------------------- the script


@pytest.fixture(scope="module")
def sudoku_checkpoints(tmp_path_factory):
    """A tiny Sudoku model saved in full, and a LoRA adapter on it (random, non-zero) saved as an adapter folder."""
    from peft import LoraConfig, get_peft_model

    folder = tmp_path_factory.mktemp("checkpoints")
    tokenizer = build_sudoku_tokenizer()
    model = build_sudoku_model(tokenizer, hidden_size=32, num_layers=1, num_heads=2, max_position_embeddings=96)
    model.save_pretrained(folder / "base")
    tokenizer.save_pretrained(folder / "base")
    torch.manual_seed(0)
    lora = get_peft_model(  # random A and B, scaled up (alpha / r = 64) so the adapter changes the greedy answers
        load_diffusion_lm(folder / "base"),
        LoraConfig(r=4, lora_alpha=256, target_modules=["query", "value"], init_lora_weights=False),
    )
    lora.save_pretrained(folder / "lora")  # no tokenizer: the script takes the base's
    return folder, tokenizer


def test_script_evaluates_full_and_adapter_checkpoints(sudoku_checkpoints, tmp_path, capsys):
    folder, tokenizer = sudoku_checkpoints
    script = load_script()
    output = tmp_path / "scores.json"
    (args,) = script.make_parser().parse_args_and_config(
        [
            "--model_name_or_path", str(folder / "base"), str(folder / "lora"),
            "--model_labels", "base", "lora",
            "--tasks", "sudoku", "--prompt_style", "compact", "--num_problems", "6",
            "--generation_lengths", "16", "32", "--block_length", "16", "--output_file", str(output),
        ]
    )  # fmt: skip
    summary = script.main(args)
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("length"))
    assert header.split()[1:] == ["16", "32"]
    saved = json.loads(output.read_text())
    assert saved["results"] == summary["results"] and saved["settings"]["block_length"] == 16

    rows = load_eval_dataset("sudoku", 6, prompt_style="compact")
    for label in ("base", "lora"):
        model = load_diffusion_lm(folder / label)
        direct = evaluate_generation_lengths(model, tokenizer, "sudoku", rows, [16, 32], block_length=16)
        for length in (16, 32):
            scores = saved["results"][label]["sudoku"][str(length)]["scores"]
            assert scores == pytest.approx(direct[length].scores)
            assert saved["completions"][label]["sudoku"][str(length)] == direct[length].completions
    assert saved["completions"]["lora"] != saved["completions"]["base"]  # the adapter is applied, not dropped
    assert any(line.startswith("lora") for line in printed.splitlines())


def test_script_on_chat_prompts_and_local_test_files(tmp_path):
    """d1's evaluation prompts through a chat template with the `<reasoning>` prefill, for Countdown (d1's test file
    layout, through `--test_files`) and GSM8K (a local data file in the hub dataset's layout)."""
    tokenizer = build_char_tokenizer(string.printable)
    model = build_tiny_masked_lm(tokenizer, kind="bert", max_position_embeddings=1024)
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    gsm8k_file = tmp_path / "gsm8k.jsonl"
    problems = [("Tom has 3 apples and buys 4. How many?", "3+4=7\n#### 7"), ("What is 10-2?", "#### 8")]
    gsm8k_file.write_text("\n".join(json.dumps({"question": q, "answer": a}) for q, a in problems))

    script = load_script()
    output = tmp_path / "scores.json"
    base_args = ["--model_name_or_path", str(tmp_path / "model"), "--generation_lengths", "32", "--batch_size", "4"]
    countdown_file = tmp_path / "countdown_cd3_test.jsonl"
    write_d1_countdown_jsonl(countdown_file)
    for task, extra in (
        ("countdown", ["--test_files", f"countdown={countdown_file}"]),
        ("gsm8k", ["--dataset_name", str(gsm8k_file)]),
    ):
        (args,) = script.make_parser().parse_args_and_config(
            [*base_args, "--tasks", task, *extra, "--output_file", str(output)]
        )
        script.main(args)
        saved = json.loads(output.read_text())
        texts = saved["completions"][str(tmp_path / "model")][task]["32"]
        rows = load_eval_dataset(task, dataset_name=str(countdown_file if task == "countdown" else gsm8k_file))
        assert len(texts) == len(rows) and len(rows) == (3 if task == "countdown" else 2)
        if task == "countdown":
            expected = [countdown_is_correct(t, n, g) for t, n, g in zip(texts, rows["numbers"], rows["target"])]
        else:
            expected = [gsm8k_is_correct(t, g) for t, g in zip(texts, rows["answer"])]
        accuracy = saved["results"][str(tmp_path / "model")][task]["32"]["scores"]["accuracy"]
        assert accuracy == pytest.approx(sum(expected) / len(expected))
        # the same texts as decoding d1's evaluation prompt with "<reasoning>" prefilled
        direct = decode_completions(
            model, tokenizer, rows["prompt"], 32, block_length=32, steps=16, prefill="<reasoning>"
        )
        assert texts == direct
    assert set(TASK_EVALUATIONS) == {"sudoku", "countdown", "gsm8k", "math500"}


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--generation_lengths", "0", "`generation_lengths` must be >= 1"),
        ("--generation_lengths", "48", "not a multiple of the block length"),
        ("--batch_size", "0", "`batch_size` must be >= 1"),
        ("--block_length", "0", "`block_length` must be >= 1"),
        ("--tokens_per_step", "0", "`tokens_per_step` must be >= 1"),
        ("--num_problems", "0", "`num_problems` must be None or >= 1"),
    ],
)
def test_script_rejects_bad_settings_when_parsing(option, value, message):
    # Before: lengths or batch size 0 divided by zero after the model was loaded.
    script = load_script()
    with pytest.raises(ValueError, match=message):
        script.make_parser().parse_args_and_config(["--model_name_or_path", "unused", option, value])


def test_script_rejects_an_unwritable_output_file_before_loading_anything(tmp_path):
    # Before: the file was opened after the whole evaluation, losing every completion. The model path does not
    # exist, so reaching the model loader would raise another error.
    script = load_script()
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    for output in (blocker / "scores.json", tmp_path):
        (args,) = script.make_parser().parse_args_and_config(
            ["--model_name_or_path", str(tmp_path / "missing-model"), "--output_file", str(output)]
        )
        with pytest.raises(ValueError, match="--output_file .* cannot be written"):
            script.main(args)
    writable = tmp_path / "new" / "scores.json"
    script.check_output_file(str(writable))
    assert not writable.exists() and writable.parent.is_dir()  # checked, not left behind as an empty file
    blocker_text = blocker.read_text()
    script.check_output_file(str(blocker))
    assert blocker.read_text() == blocker_text  # an existing file is not truncated by the check


def test_script_reads_a_d1_sudoku_test_file(sudoku_checkpoints, tmp_path):
    folder, tokenizer = sudoku_checkpoints
    write_d1_sudoku_csv(tmp_path / "4x4_test_sudoku.csv")
    script = load_script()
    argv = ["--model_name_or_path", str(folder / "base"), "--tasks", "sudoku", "--prompt_style", "compact"]
    argv += ["--generation_lengths", "16", "--block_length", "16", "--output_file", str(tmp_path / "scores.json")]
    (args,) = script.make_parser().parse_args_and_config(
        [*argv, "--test_files", f"sudoku={tmp_path}/4x4_test_sudoku.csv"]
    )
    script.main(args)
    saved = json.loads((tmp_path / "scores.json").read_text())
    texts = saved["completions"][str(folder / "base")]["sudoku"]["16"]
    rows = load_eval_dataset("sudoku", dataset_name=str(tmp_path / "4x4_test_sudoku.csv"), prompt_style="compact")
    assert len(texts) == 3
    expected = load_metric("sudoku_accuracy", keep_in_memory=True).compute(
        predictions=texts, references=rows["solution"], puzzles=rows["puzzle"]
    )
    assert saved["results"][str(folder / "base")]["sudoku"]["16"]["scores"] == pytest.approx(expected)
    for wrong in ("countdown=x.jsonl", "sudoku"):
        (args,) = script.make_parser().parse_args_and_config([*argv, "--test_files", wrong])
        with pytest.raises(ValueError, match="give TASK=SOURCE with TASK one of the --tasks"):
            script.main(args)


def test_console_script_exits_zero_and_prints_the_table(sudoku_checkpoints):
    import shutil
    import subprocess

    folder, _ = sudoku_checkpoints
    executable = shutil.which("trl-dam-evaluate")
    assert executable is not None, "pip install -e . installs the trl-dam-evaluate console script"
    result = subprocess.run(
        [executable, "--model_name_or_path", str(folder / "base"), "--model_labels", "tiny", "--tasks", "sudoku"]
        + ["--prompt_style", "compact", "--num_problems", "4", "--generation_lengths", "16", "--block_length", "16"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    row = next(line for line in result.stdout.splitlines() if line.startswith("tiny"))
    score = float(row.split()[1])
    rows = load_eval_dataset("sudoku", 4, prompt_style="compact")
    direct = evaluate_generation_lengths(
        load_diffusion_lm(folder / "base"), build_sudoku_tokenizer(), "sudoku", rows, [16]
    )
    assert score == pytest.approx(100 * direct[16].main_score, abs=0.05)


# ---------------------------------------------------------------------------------------------- batch size


def test_decode_batch_size_fits_llada_8b_on_one_80gb_gpu():
    """LLaDA-8B's dimensions (built on the meta device: no memory): the default batch fits 80 GB by the documented
    rule, where the former fixed 256 needed ~59 GB for one float32 copy of the logits alone."""
    from trl_dam.evaluation import MAX_DECODE_BATCH_SIZE, decode_batch_size
    from trl_dam.models import TinyLLaDAConfig, TinyLLaDAModelLM

    vocab, hidden, mlp, heads, layers = 126464, 4096, 12288, 32, 32
    config = TinyLLaDAConfig(
        vocab_size=vocab, d_model=hidden, n_layers=layers, n_heads=heads, mlp_hidden_size=mlp, mask_token_id=126336
    )
    with torch.device("meta"):
        model = TinyLLaDAModelLM(config).to(torch.bfloat16)
    parameters = sum(p.numel() for p in model.parameters())
    assert parameters == 2 * vocab * hidden + layers * (4 * hidden * hidden + 3 * hidden * mlp + 2 * hidden) + hidden
    length, block, memory = 200 + 256, 32, 80 * 2**30
    per_sequence = length * vocab * 2 + 8 * block * vocab + length * (4 * hidden + 3 * mlp) * 2 + heads * length**2 * 2
    batch = decode_batch_size(model, length, block, memory_bytes=memory)
    assert batch == int(0.5 * (memory - 2 * parameters) // per_sequence) == 166
    assert parameters * 2 + batch * per_sequence <= memory
    assert 256 * length * vocab * 4 > 58e9  # the old default's float32 logits copy
    # Longer canvases and smaller GPUs get smaller batches; tiny models hit the cap; never below one sequence.
    assert decode_batch_size(model, 2 * length, block, memory_bytes=memory) < batch
    assert decode_batch_size(model, length, block, memory_bytes=40 * 2**30) < batch
    assert decode_batch_size(model, length, block, memory_bytes=15 * 2**30) == 1
    tiny = build_tiny_masked_lm(build_char_tokenizer("abc"), "llada")
    assert decode_batch_size(tiny, 64, memory_bytes=2**30) == MAX_DECODE_BATCH_SIZE
