"""Shared task helpers: completion text, answer tags, boxed answers, prompt wrapping and local dataset loading."""

import json
import sys

import pytest

from trl_dam.tasks import (
    EVAL_PREFILL,
    completion_to_text,
    completions_to_texts,
    extract_answer_tag,
    find_boxed_contents,
    has_reasoning_answer_layout,
    last_boxed_content,
    load_split,
)
from trl_dam.tasks import boxed as boxed_module
from trl_dam.tasks.prompting import as_prompt, check_prompt_style


class TestCompletionToText:
    def test_string_is_returned_unchanged(self):
        assert completion_to_text("<answer>\n5\n</answer>") == "<answer>\n5\n</answer>"

    def test_conversational_single_message(self):
        assert completion_to_text([{"role": "assistant", "content": "hello"}]) == "hello"

    def test_conversational_keeps_only_assistant_turns(self):
        completion = [
            {"role": "assistant", "content": "a"},
            {"role": "tool", "content": "ignored"},
            {"role": "assistant", "content": [{"type": "text", "text": "b"}]},
            {"content": "c"},
        ]
        assert completion_to_text(completion) == "abc"

    def test_batch(self):
        assert completions_to_texts(["x", [{"role": "assistant", "content": "y"}]]) == ["x", "y"]

    def test_rejects_other_types(self):
        with pytest.raises(TypeError):
            completion_to_text(5)


class TestAnswerFormat:
    def test_last_answer_block_is_used(self):
        text = "<answer>first</answer> then <answer>\n second \n</answer> tail"
        assert extract_answer_tag(text) == "second"

    def test_unclosed_block_runs_to_the_end(self):
        assert extract_answer_tag("<reasoning>r</reasoning><answer>\n42") == "42"

    def test_no_tag(self):
        assert extract_answer_tag("the answer is 42") is None

    def test_layout_accepts_multiline_bodies(self):
        assert has_reasoning_answer_layout("<reasoning>\nline 1\nline 2\n</reasoning>\n<answer>\n7\n</answer>\n")
        assert has_reasoning_answer_layout("  <reasoning>r</reasoning><answer>7</answer> trailing")

    def test_layout_rejects_wrong_order_and_missing_blocks(self):
        assert not has_reasoning_answer_layout("<answer>7</answer><reasoning>r</reasoning>")
        assert not has_reasoning_answer_layout("<reasoning>r</reasoning>")
        assert not has_reasoning_answer_layout("text <reasoning>r</reasoning><answer>7</answer>")

    def test_eval_prefill(self):
        assert EVAL_PREFILL == "<reasoning>"


class TestBoxed:
    def test_nested_braces(self):
        assert last_boxed_content(r"x \boxed{\frac{1}{\sqrt{2}}} y") == r"\frac{1}{\sqrt{2}}"

    def test_escaped_braces_and_fbox_and_braceless(self):
        text = r"\boxed 5 then \boxed{\{1, 2\}} and \fbox{z}"
        assert find_boxed_contents(text) == ["5", r"\{1, 2\}", "z"]

    def test_last_complete_box_wins_over_truncated_one(self):
        assert last_boxed_content(r"\boxed{3} and \boxed{\frac{1}{2}") == "3"

    def test_no_box(self):
        assert last_boxed_content("no box here, \\boxedx{1}") is None

    def test_braceless_argument_stops_at_the_next_box(self):
        assert find_boxed_contents(r"\boxed a\boxed{b} \fbox \boxed{c}") == ["a", "b", "c"]

    def test_unclosed_boxes_by_the_thousand(self):
        # 70 KB of truncated boxes, then one complete box: it alone is found.
        assert find_boxed_contents("\\boxed{" * 10_000) == []
        assert last_boxed_content("\\boxed{" * 10_000 + r"\boxed{7}") == "7"
        assert last_boxed_content("\\boxed{" * 10_000 + "}" * 10_000) == "\\boxed{" * 9_999 + "}" * 9_999

    def test_work_grows_linearly_with_unclosed_boxes(self):
        # Python lines executed inside the parser's module, at n and 2n repeats: a quadratic parse (rescanning to the
        # end after every unclosed box) doubles its work per box, so the total grows four-fold.
        def lines_executed(text):
            count = 0

            def tracer(frame, event, arg):
                nonlocal count
                if frame.f_code.co_filename == boxed_module.__file__:
                    count += event == "line"
                    return tracer
                return None

            sys.settrace(tracer)
            try:
                find_boxed_contents(text)
            finally:
                sys.settrace(None)
            return count

        for unit in ("\\boxed{", "\\boxed{{\\{", "\\fbox {}\\boxed a"):
            small, large = lines_executed(unit * 500), lines_executed(unit * 1000)
            assert small > 500
            assert large < 2.1 * small, (unit, small, large)


class TestPrompting:
    def test_as_prompt(self):
        assert as_prompt("hi", conversational=True) == [{"role": "user", "content": "hi"}]
        assert as_prompt("hi", conversational=False) == "hi"

    def test_unknown_style(self):
        with pytest.raises(ValueError, match="prompt_style"):
            check_prompt_style("fancy", ("d1",), "sudoku")


class TestLoadSplit:
    def test_json_file_with_default_hub_path(self, tmp_path):
        path = tmp_path / "rows.jsonl"
        path.write_text("\n".join(json.dumps({"x": i}) for i in range(3)))
        dataset = load_split("some/hub-id", "test", name="main", data_files=str(path))
        assert dataset["x"] == [0, 1, 2]

    def test_explicit_builder_and_split_mapping(self, tmp_path):
        path = tmp_path / "rows.json"
        path.write_text(json.dumps([{"x": 5}]))
        dataset = load_split("json", "validation", data_files={"validation": [path]})
        assert dataset["x"] == [5]

    def test_unknown_extension(self, tmp_path):
        with pytest.raises(ValueError, match="file format"):
            load_split("some/hub-id", "train", data_files=str(tmp_path / "rows.xyz"))
