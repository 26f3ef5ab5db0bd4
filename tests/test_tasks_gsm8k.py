"""GSM8K task: gold extraction, evaluation parser, prompts and loading through `datasets` from local files."""

import json

import datasets
import pytest

from trl_dam.tasks.answer_format import REASONING_FORMAT_INSTRUCTION
from trl_dam.tasks.gsm8k import (
    GSM8K_EVAL_INSTRUCTIONS,
    extract_gsm8k_answer,
    extract_gsm8k_gold,
    extract_gsm8k_tagged_answer,
    find_numbers,
    format_gsm8k_prompt,
    gsm8k_is_correct,
    load_gsm8k,
    numbers_match,
    parse_number,
)

ROWS = {
    "question": ["Tom has 3 apples and buys 4 more. How many?", "A shirt costs $1,200 and is cut by $200. Price?"],
    "answer": ["3 + 4 = <<3+4=7>>7\n#### 7", "1200 - 200 = <<1200-200=1000>>1000\n#### 1,000"],
}


class TestAnswers:
    def test_gold(self):
        assert extract_gsm8k_gold(ROWS["answer"][0]) == "7"
        assert extract_gsm8k_gold(ROWS["answer"][1]) == "1000"
        with pytest.raises(ValueError):
            extract_gsm8k_gold("no marker")

    def test_numbers(self):
        assert find_numbers("pay $1,234.50 for 3 items, -2 left, .5 more") == ["1234.50", "3", "-2", ".5"]
        assert parse_number(" $1,000. ") == 1000.0
        assert parse_number("18 apples") is None
        assert numbers_match("18.0", "18") and not numbers_match("17", "18") and not numbers_match(None, "18")

    def test_evaluation_parser(self):
        assert extract_gsm8k_answer("<reasoning>3+4=7</reasoning><answer>\\boxed{7}</answer>") == "7"
        assert extract_gsm8k_answer("\\boxed{x} then \\boxed{\\$1,000} then \\boxed{5}") == "1000"
        assert extract_gsm8k_answer("<answer>It is 3 + 4 = 7 apples</answer>") == "7"
        assert extract_gsm8k_answer("The answer is 7.") is None
        assert gsm8k_is_correct("<answer>\n\\boxed{1,000}\n</answer>", "1000")
        assert not gsm8k_is_correct("<answer>\n\\boxed{999}\n</answer>", "1000")

    def test_training_reader(self):
        assert extract_gsm8k_tagged_answer("<answer>\n$1,000.\n</answer>") == "1000"
        assert extract_gsm8k_tagged_answer("<answer>\\boxed{72}</answer>") == "72"
        assert extract_gsm8k_tagged_answer("<answer>72 apples</answer>") == "72 apples"
        assert extract_gsm8k_tagged_answer("72") is None


class TestPrompts:
    def test_styles(self):
        assert format_gsm8k_prompt("Q?") == f"{REASONING_FORMAT_INSTRUCTION}\n\nQ?"
        assert format_gsm8k_prompt("Q?", "d1_eval") == f"{GSM8K_EVAL_INSTRUCTIONS}\n\nQ?"
        with pytest.raises(ValueError):
            format_gsm8k_prompt("Q?", "compact")


class TestLoader:
    def test_parquet_data_files(self, tmp_path):
        path = tmp_path / "test.parquet"
        datasets.Dataset.from_dict(ROWS).to_parquet(str(path))
        dataset = load_gsm8k("test", data_files=str(path))
        assert dataset["answer"] == ["7", "1000"]
        assert dataset["solution"] == ROWS["answer"]
        assert dataset["question"] == ROWS["question"]
        assert dataset[0]["prompt"] == [{"role": "user", "content": format_gsm8k_prompt(ROWS["question"][0])}]

    def test_json_data_files_eval_prompt(self, tmp_path):
        path = tmp_path / "rows.jsonl"
        path.write_text("\n".join(json.dumps({"question": q, "answer": a}) for q, a in zip(*ROWS.values())))
        dataset = load_gsm8k("train", path="json", data_files=[path], prompt_style="d1_eval", conversational=False)
        assert dataset["prompt"][1] == format_gsm8k_prompt(ROWS["question"][1], "d1_eval")

    def test_local_copy_of_the_hub_repository(self, tmp_path):
        # Same layout as openai/gsm8k on the Hub: a README declaring the "main" configuration and parquet shards.
        (tmp_path / "main").mkdir()
        datasets.Dataset.from_dict(ROWS).to_parquet(str(tmp_path / "main" / "test-00000-of-00001.parquet"))
        (tmp_path / "README.md").write_text(
            "---\nconfigs:\n- config_name: main\n  data_files:\n  - split: test\n    path: main/test-*\n---\n"
        )
        dataset = load_gsm8k("test", path=str(tmp_path), name="main")
        assert dataset["answer"] == ["7", "1000"]
