"""Countdown task: safe arithmetic, solver, generator, prompts and answer checks."""

from fractions import Fraction

import pytest

from trl_dam.tasks.countdown import (
    InvalidExpressionError,
    arithmetic_literals,
    build_countdown_prompt,
    check_countdown_expression,
    countdown_is_correct,
    countdown_problem_split,
    countdown_reachable_values,
    evaluate_arithmetic,
    extract_countdown_expression,
    format_countdown_prompt,
    generate_countdown_dataset,
    generate_countdown_problems,
    normalize_countdown_expression,
    solve_countdown,
)


class TestArithmetic:
    def test_exact_values(self):
        assert evaluate_arithmetic("2*4-3") == 5
        assert evaluate_arithmetic("(44 + 19) - 35") == 28
        assert evaluate_arithmetic("1/3*3") == 1
        assert evaluate_arithmetic("7/2") == Fraction(7, 2)
        assert evaluate_arithmetic("-(3-5)") == 2

    def test_literals_in_order(self):
        assert arithmetic_literals("(1+2)+3") == [1, 2, 3]
        assert arithmetic_literals("93+(30-100)") == [93, 30, 100]

    @pytest.mark.parametrize(
        "text",
        [
            "2**3",
            "__import__('os').system('true')",
            "2.5+1",
            "0x10",
            "1 2",
            "abs(-3)",
            "3 % 2",
            "4 // 2",
            "",
            "1" * 300,
        ],
    )
    def test_rejects_everything_else(self, text):
        with pytest.raises(InvalidExpressionError):
            evaluate_arithmetic(text)

    def test_division_by_zero(self):
        with pytest.raises(ZeroDivisionError):
            evaluate_arithmetic("3/(2-2)")


class TestSolver:
    def test_finds_solutions(self):
        for numbers, target in (([44, 19, 35], 98), ([30, 100, 93], 23), ([2, 3, 4], 5), ([3, 7, 25, 50], 425)):
            expression = solve_countdown(numbers, target)
            assert expression is not None
            assert evaluate_arithmetic(expression) == target
            assert sorted(arithmetic_literals(expression)) == sorted(numbers)

    def test_unsolvable(self):
        assert solve_countdown([1, 1, 1], 100) is None

    def test_reachable_values(self):
        reachable = countdown_reachable_values([1, 2])
        assert set(reachable) == {3, -1, 1, 2, Fraction(1, 2)}
        assert all(evaluate_arithmetic(text) == value for value, text in reachable.items())


class TestGenerator:
    def test_problems_are_solvable_distinct_and_in_range(self):
        problems = generate_countdown_problems(40, seed=0)
        assert len(problems) == 40
        assert len({(tuple(sorted(p["numbers"])), p["target"]) for p in problems}) == 40
        for problem in problems:
            assert len(problem["numbers"]) == 3 and all(1 <= n <= 100 for n in problem["numbers"])
            assert 1 <= problem["target"] <= 100
            assert evaluate_arithmetic(problem["expression"]) == problem["target"]
            assert countdown_problem_split(problem["numbers"], problem["target"]) == "train"

    def test_train_and_test_disjoint(self):
        train = generate_countdown_problems(60, seed=0, max_number=20, max_target=20)
        test = generate_countdown_problems(20, seed=0, max_number=20, max_target=20, split="test")
        key = lambda p: (tuple(sorted(p["numbers"])), p["target"])  # noqa: E731
        assert not {key(p) for p in train} & {key(p) for p in test}
        assert all(countdown_problem_split(p["numbers"], p["target"]) == "test" for p in test)

    def test_split_ignores_number_order(self):
        assert countdown_problem_split([3, 1, 2], 6) == countdown_problem_split([1, 2, 3], 6)
        assert countdown_problem_split([1, 2, 3], 6, test_fraction=1.0) == "test"
        assert countdown_problem_split([1, 2, 3], 6, test_fraction=0.0) == "train"

    def test_dataset(self):
        dataset = generate_countdown_dataset(5, seed=1)
        assert dataset.column_names == ["prompt", "numbers", "target", "expression"]
        assert dataset["target"] == generate_countdown_dataset(5, seed=1)["target"]
        row = dataset[0]
        assert row["prompt"] == [{"role": "user", "content": format_countdown_prompt(row["numbers"], row["target"])}]
        compact = generate_countdown_dataset(2, seed=1, prompt_style="compact")[0]
        assert compact["prompt"] == f"countdown: {' '.join(map(str, compact['numbers']))} -> {compact['target']}\n"

    def test_too_narrow_range(self):
        with pytest.raises(RuntimeError):
            generate_countdown_problems(5, min_number=1, max_number=1, num_numbers=2)


class TestPrompts:
    def test_d1_prompts(self):
        train = format_countdown_prompt([44, 19, 35], 98)
        assert train.startswith("\nStructure your reply") and "[44, 19, 35]" in train and "98" in train
        evaluation = format_countdown_prompt([44, 19, 35], 98, "d1_eval")
        assert evaluation.endswith("Numbers: [44, 19, 35]\nTarget: 98") and "\\boxed{" in evaluation
        assert build_countdown_prompt([1, 2, 3], 6, "compact") == "countdown: 1 2 3 -> 6\n"


class TestAnswers:
    def test_extraction_order(self):
        assert extract_countdown_expression("<reasoning>r</reasoning>\n<answer>\n2*4-3\n</answer>") == "2*4-3"
        assert extract_countdown_expression("<answer>\\boxed{2 \\times 4 - 3}</answer>") == "2 * 4 - 3"
        assert extract_countdown_expression("so \\boxed{(2+3) \\div 5 = 1} done") == "(2+3) / 5"
        assert extract_countdown_expression("  44+19-35\n") == "44+19-35"
        assert extract_countdown_expression("<answer>\n</answer>") is None

    def test_normalisation(self):
        assert normalize_countdown_expression("$4 × 2 − 3$ = 5") == "4 * 2 - 3"

    def test_statuses(self):
        assert check_countdown_expression("2*4-3", [2, 3, 4], 5) == "correct"
        assert check_countdown_expression("2*4+3", [2, 3, 4], 5) == "wrong_value"
        assert check_countdown_expression("3/(4-4)", [3, 4, 4], 5) == "wrong_value"
        assert check_countdown_expression("2*4-3+0", [2, 3, 4], 5) == "wrong_numbers"
        assert check_countdown_expression("8-3", [2, 3, 4], 5) == "wrong_numbers"
        assert check_countdown_expression("two times four", [2, 3, 4], 5) == "invalid"
        assert check_countdown_expression(None, [2, 3, 4], 5) == "missing"

    def test_is_correct(self):
        assert countdown_is_correct("<answer>\\boxed{44+19+35}</answer>", [44, 19, 35], 98)
        assert not countdown_is_correct("<answer>44+19</answer>", [44, 19, 35], 63)
