"""Sudoku task: grids, solver, solution-disjoint generator, prompts and answer parsing."""

import pytest
from sudoku_alternatives import (
    THREE_SOLUTION_PUZZLE,
    THREE_SOLUTIONS,
    TWO_SOLUTION_PUZZLE,
    TWO_SOLUTIONS,
    brute_force_solutions,
)

from trl_dam.tasks.sudoku import (
    NUM_SUDOKU_SOLUTIONS,
    SUDOKU_INSTRUCTIONS,
    build_sudoku_prompt,
    count_sudoku_solutions,
    enumerate_sudoku_solutions,
    extract_sudoku_grid,
    format_sudoku_prompt,
    generate_sudoku_dataset,
    generate_sudoku_puzzles,
    is_valid_sudoku_solution,
    score_sudoku_grid,
    score_sudoku_grid_valid,
    solve_sudoku,
    sudoku_blank_accuracy,
    sudoku_grid_solves,
    sudoku_solution_split,
    sudoku_solutions,
)

SOLUTION = "1234341221434321"
PUZZLE = "1030001221004300"  # 8 blanks, unique solution SOLUTION
HALF_RIGHT = "1234341221344312"  # blanks 1, 3, 4, 5 right; 10, 11, 14, 15 wrong


class TestGrid:
    def test_enumerates_all_288_distinct_valid_solutions(self):
        solutions = enumerate_sudoku_solutions()
        assert len(solutions) == len(set(solutions)) == NUM_SUDOKU_SOLUTIONS == 288
        assert all(is_valid_sudoku_solution(grid) for grid in solutions)
        assert list(solutions) == sorted(solutions)

    def test_validity(self):
        assert is_valid_sudoku_solution(SOLUTION)
        assert not is_valid_sudoku_solution("1234123412341234")  # columns repeat
        assert not is_valid_sudoku_solution(PUZZLE)  # blanks

    def test_solver_and_counts(self):
        assert solve_sudoku(PUZZLE) == SOLUTION
        assert count_sudoku_solutions(PUZZLE) == 1
        assert solve_sudoku("3102200002100320") == "3142243142131324"  # a puzzle of d1's test file
        assert count_sudoku_solutions("0" * 16) == 288
        assert count_sudoku_solutions("0" * 16, limit=2) == 2
        assert count_sudoku_solutions("1100" + "0" * 12) == 0  # contradictory givens
        assert solve_sudoku("1100" + "0" * 12) is None

    def test_rejects_malformed_grid(self):
        with pytest.raises(ValueError):
            count_sudoku_solutions("12345")


class TestSolutionSplit:
    def test_partition_is_disjoint_complete_and_deterministic(self):
        train = sudoku_solution_split("train")
        test = sudoku_solution_split("test")
        assert len(train) == 200 and len(test) == 88
        assert not set(train) & set(test)
        assert set(train) | set(test) == set(enumerate_sudoku_solutions())
        assert sudoku_solution_split("test") == test

    def test_split_seed_and_size(self):
        assert sudoku_solution_split("test", split_seed=1) != sudoku_solution_split("test")
        assert len(sudoku_solution_split("test", num_test_solutions=10)) == 10
        with pytest.raises(ValueError):
            sudoku_solution_split("validation")
        with pytest.raises(ValueError):
            sudoku_solution_split("test", num_test_solutions=288)


class TestGenerator:
    def test_puzzles_are_unique_solvable_and_consistent(self):
        pairs = generate_sudoku_puzzles(60, seed=0, num_blanks=8)
        assert len(pairs) == 60 and len({puzzle for puzzle, _ in pairs}) == 60
        for puzzle, solution in pairs:
            assert puzzle.count("0") == 8
            assert count_sudoku_solutions(puzzle, limit=2) == 1
            assert solve_sudoku(puzzle) == solution
            assert all(p in ("0", s) for p, s in zip(puzzle, solution))

    def test_blank_range(self):
        blanks = [puzzle.count("0") for puzzle, _ in generate_sudoku_puzzles(80, seed=3, num_blanks=(4, 10))]
        assert min(blanks) >= 4 and max(blanks) <= 10 and len(set(blanks)) > 3

    def test_hardest_puzzles(self):
        for puzzle, _ in generate_sudoku_puzzles(5, seed=0, num_blanks=12, split="test"):
            assert puzzle.count("0") == 12 and count_sudoku_solutions(puzzle, limit=2) == 1

    def test_train_and_test_never_share_a_solution(self):
        train = generate_sudoku_dataset(150, seed=0, split="train")
        test = generate_sudoku_dataset(150, seed=0, split="test")
        assert set(train["solution"]) <= set(sudoku_solution_split("train"))
        assert set(test["solution"]) <= set(sudoku_solution_split("test"))
        assert not set(train["solution"]) & set(test["solution"])

    def test_dataset_columns_and_determinism(self):
        dataset = generate_sudoku_dataset(10, seed=7)
        assert dataset.column_names == ["prompt", "puzzle", "solution", "num_blanks"]
        assert dataset["num_blanks"] == [8] * 10
        assert dataset["puzzle"] == generate_sudoku_dataset(10, seed=7)["puzzle"]
        assert dataset["puzzle"] != generate_sudoku_dataset(10, seed=8)["puzzle"]
        prompt = dataset[0]["prompt"]
        assert prompt == [{"role": "user", "content": format_sudoku_prompt(dataset[0]["puzzle"])}]

    def test_compact_dataset_has_plain_prompts(self):
        row = generate_sudoku_dataset(3, seed=1, prompt_style="compact")[0]
        assert row["prompt"] == f"4x4 sudoku: {row['puzzle']}\n"

    def test_invalid_blank_counts(self):
        for bad in (0, 13, (5, 4)):
            with pytest.raises(ValueError):
                generate_sudoku_puzzles(1, num_blanks=bad)


class TestPrompts:
    def test_d1_prompt(self):
        text = format_sudoku_prompt(PUZZLE)
        assert text.startswith(SUDOKU_INSTRUCTIONS)
        assert text.endswith(f"{PUZZLE}\n")
        assert "<reasoning>" in text and "<answer>" in text and "'0'" in text
        assert format_sudoku_prompt(PUZZLE, "d1_eval") == text

    def test_conversational_override(self):
        assert build_sudoku_prompt(PUZZLE, "compact", conversational=True) == [
            {"role": "user", "content": f"4x4 sudoku: {PUZZLE}\n"}
        ]
        assert build_sudoku_prompt(PUZZLE, "d1", conversational=False) == format_sudoku_prompt(PUZZLE)


class TestAnswers:
    def test_answer_tag_digits(self):
        assert (
            extract_sudoku_grid(f"<reasoning>row 1 has 1 2</reasoning>\n<answer>\n{SOLUTION}\n</answer>") == SOLUTION
        )
        assert extract_sudoku_grid("<answer>1234 3412\n2143 4321</answer>") == SOLUTION

    def test_without_tags_all_digits_of_the_completion(self):
        assert extract_sudoku_grid(SOLUTION) == SOLUTION
        assert extract_sudoku_grid(" 1234-3412-2143-4321 ") == SOLUTION

    def test_pad_and_truncate(self):
        assert extract_sudoku_grid("<answer>1234</answer>") == "1234" + "0" * 12
        assert extract_sudoku_grid(SOLUTION + "99") == SOLUTION

    def test_unparseable(self):
        assert extract_sudoku_grid("<answer>no digits</answer>") is None
        assert extract_sudoku_grid("I give up") is None

    def test_scores(self):
        assert score_sudoku_grid(SOLUTION, PUZZLE, SOLUTION) == (8, 8)
        assert score_sudoku_grid(HALF_RIGHT, PUZZLE, SOLUTION) == (4, 8)
        assert score_sudoku_grid(None, PUZZLE, SOLUTION) == (0, 8)
        assert sudoku_blank_accuracy(f"<answer>{HALF_RIGHT}</answer>", PUZZLE, SOLUTION) == 0.5
        assert sudoku_blank_accuracy("nothing", PUZZLE, SOLUTION) == 0.0
        # Given cells are not scored: changing one leaves the blank-cell accuracy at 1.
        assert sudoku_blank_accuracy("4" + SOLUTION[1:], PUZZLE, SOLUTION) == 1.0


class TestValidAlternatives:
    """Puzzles with several solutions: d1's score counts only the stored one, the validity-aware score any."""

    def test_the_puzzles_have_exactly_two_and_three_solutions_by_brute_force(self):
        assert brute_force_solutions(TWO_SOLUTION_PUZZLE) == sorted(TWO_SOLUTIONS)
        assert brute_force_solutions(THREE_SOLUTION_PUZZLE) == sorted(THREE_SOLUTIONS)
        assert sudoku_solutions(TWO_SOLUTION_PUZZLE) == TWO_SOLUTIONS
        assert sudoku_solutions(THREE_SOLUTION_PUZZLE) == THREE_SOLUTIONS
        assert brute_force_solutions(PUZZLE) == [SOLUTION]

    def test_an_alternative_solution_scores_zero_for_d1_and_full_when_validity_aware(self):
        stored, other = TWO_SOLUTIONS
        assert score_sudoku_grid(other, TWO_SOLUTION_PUZZLE, stored) == (0, 4)  # differs in all 4 empty cells
        assert score_sudoku_grid_valid(other, TWO_SOLUTION_PUZZLE) == (4, 4)
        assert score_sudoku_grid_valid(stored, TWO_SOLUTION_PUZZLE) == (4, 4)
        assert sudoku_grid_solves(other, TWO_SOLUTION_PUZZLE) and sudoku_grid_solves(stored, TWO_SOLUTION_PUZZLE)

    def test_three_solutions(self):
        first, stored, third = THREE_SOLUTIONS
        assert score_sudoku_grid(first, THREE_SOLUTION_PUZZLE, stored) == (4, 8)
        assert score_sudoku_grid(third, THREE_SOLUTION_PUZZLE, stored) == (1, 8)
        for grid in THREE_SOLUTIONS:
            assert score_sudoku_grid_valid(grid, THREE_SOLUTION_PUZZLE) == (8, 8)
        # Not a Sudoku (cell 15 of the third solution changed): 7 of 8 cells agree with the third solution, the best.
        broken = third[:15] + "4"
        assert not sudoku_grid_solves(broken, THREE_SOLUTION_PUZZLE)
        assert score_sudoku_grid(broken, THREE_SOLUTION_PUZZLE, stored) == (1, 8)
        assert score_sudoku_grid_valid(broken, THREE_SOLUTION_PUZZLE) == (7, 8)
        assert score_sudoku_grid_valid(None, THREE_SOLUTION_PUZZLE) == (0, 8)

    def test_unique_puzzles_score_the_same_and_contradictory_givens_are_named(self):
        for grid in (SOLUTION, HALF_RIGHT, None):
            assert score_sudoku_grid_valid(grid, PUZZLE) == score_sudoku_grid(grid, PUZZLE, SOLUTION)
        with pytest.raises(ValueError, match="'1100000000000000' has no solution"):
            score_sudoku_grid_valid(SOLUTION, "11" + "0" * 14)
