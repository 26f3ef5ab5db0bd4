"""MATH500 task: answer extraction, math-verify equivalence, prompts and loading from local files."""

import builtins
import json

import pytest

from trl_dam.tasks.answer_format import REASONING_FORMAT_INSTRUCTION
from trl_dam.tasks.math500 import (
    MATH_EVAL_INSTRUCTIONS,
    extract_math_answer,
    extract_math_gold,
    format_math_prompt,
    load_math500,
    math_answers_match,
    require_math_verify,
)

MATH500_ROWS = [
    {
        "problem": "Compute $\\frac{1}{2} + \\frac{1}{4}$.",
        "solution": "The sum is $\\boxed{\\frac{3}{4}}$.",
        "answer": "\\frac{3}{4}",
        "subject": "Prealgebra",
        "level": 1,
        "unique_id": "test/prealgebra/1.json",
    },
    {
        "problem": "Convert $(0,3)$ to polar coordinates.",
        "solution": "So $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}$.",
        "answer": "\\left( 3, \\frac{\\pi}{2} \\right)",
        "subject": "Precalculus",
        "level": 2,
        "unique_id": "test/precalculus/807.json",
    },
]


class TestAnswers:
    def test_last_box_with_nested_braces(self):
        assert extract_math_answer("first \\boxed{1}, finally \\boxed{\\frac{\\sqrt{3}}{2}}") == "\\frac{\\sqrt{3}}{2}"

    def test_answer_tag_fallback(self):
        assert extract_math_answer("<answer>\n$x^2$\n</answer>") == "x^2"
        assert extract_math_answer("no answer at all") is None

    def test_gold(self):
        assert extract_math_gold(MATH500_ROWS[0]) == "\\frac{3}{4}"
        assert extract_math_gold({"solution": "thus $\\boxed{\\{1,2\\}}$"}) == "\\{1,2\\}"
        with pytest.raises(ValueError):
            extract_math_gold({"solution": "no box"})


class TestEquivalence:
    @pytest.fixture(autouse=True)
    def _needs_math_verify(self):
        pytest.importorskip("math_verify")

    @pytest.mark.parametrize(
        ("prediction", "gold"),
        [
            ("\\dfrac{3}{4}", "\\frac{3}{4}"),
            ("0.75", "\\frac{3}{4}"),
            ("(3, \\frac{\\pi}{2})", "\\left( 3, \\frac{\\pi}{2} \\right)"),
            ("(x+2)(x+5)", "x^2+7x+10"),
            ("11\\sqrt{2}", "11\\sqrt2"),
            ("\\text{Evelyn}", "\\text{Evelyn}"),
        ],
    )
    def test_equivalent(self, prediction, gold):
        assert math_answers_match(prediction, gold)

    @pytest.mark.parametrize(("prediction", "gold"), [("3", "4"), ("\\frac{1}{2}", "\\frac{3}{4}"), (None, "1")])
    def test_not_equivalent(self, prediction, gold):
        assert not math_answers_match(prediction, gold)


def test_clear_error_without_math_verify(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "math_verify":
            raise ImportError("No module named 'math_verify'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match="pip install math-verify"):
        require_math_verify()
    with pytest.raises(ImportError, match="pip install math-verify"):
        math_answers_match("1", "1")


class TestPromptsAndLoader:
    def test_prompts(self):
        assert format_math_prompt("P").startswith(REASONING_FORMAT_INSTRUCTION)
        assert "\\boxed{}" in format_math_prompt("P") and format_math_prompt("P").endswith("\n\nP")
        assert format_math_prompt("P", "d1_eval") == f"{MATH_EVAL_INSTRUCTIONS}\n\nP"

    def test_math500_jsonl(self, tmp_path):
        path = tmp_path / "test.jsonl"
        path.write_text("\n".join(json.dumps(row) for row in MATH500_ROWS))
        dataset = load_math500("test", data_files=str(path), prompt_style="d1_eval")
        assert dataset["answer"] == [row["answer"] for row in MATH500_ROWS]
        assert dataset["level"] == [1, 2]
        assert dataset[0]["prompt"] == [
            {"role": "user", "content": format_math_prompt(MATH500_ROWS[0]["problem"], "d1_eval")}
        ]

    def test_training_set_without_answer_column(self, tmp_path):
        # d1's MATH training source has `problem` and `solution` only: the gold answer is the solution's last box.
        path = tmp_path / "train.parquet"
        import datasets

        rows = {key: [row[key] for row in MATH500_ROWS] for key in ("problem", "solution")}
        datasets.Dataset.from_dict(rows).to_parquet(str(path))
        dataset = load_math500("train", path="parquet", data_files={"train": str(path)})
        assert dataset["answer"] == ["\\frac{3}{4}", "\\left( 3, \\frac{\\pi}{2} \\right)"]
