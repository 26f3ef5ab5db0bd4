"""Sudoku rewards on correct, half-correct, compact and malformed completions."""

from sudoku_alternatives import THREE_SOLUTION_PUZZLE, THREE_SOLUTIONS, TWO_SOLUTION_PUZZLE, TWO_SOLUTIONS

from trl_dam.rewards import sudoku_compact_format_reward, sudoku_format_reward, sudoku_reward, sudoku_valid_reward

SOLUTION = "1234341221434321"
PUZZLE = "1030001221004300"
HALF_RIGHT = "1234341221344312"

D1_CORRECT = f"<reasoning>\nRow 1 misses 2 and 4, so ...\n</reasoning>\n<answer>\n{SOLUTION}\n</answer>"
D1_HALF = f"<reasoning>\nGuessing.\n</reasoning>\n<answer>\n{HALF_RIGHT}\n</answer>"
D1_SPACED = "<reasoning>\nDone.\n</reasoning>\n<answer>\n1234 3412 2143 4321\n</answer>"
MALFORMED = "I cannot solve this puzzle."
COMPACT_CORRECT = SOLUTION


def _rewards(completions):
    columns = {"puzzle": [PUZZLE] * len(completions), "solution": [SOLUTION] * len(completions)}
    correctness = sudoku_reward(None, completions, **columns)
    return (
        correctness,
        sudoku_format_reward(None, completions, **columns),
        sudoku_compact_format_reward(None, completions, **columns),
    )


def test_d1_style_values():
    correctness, d1_format, compact_format = _rewards([D1_CORRECT, D1_HALF, D1_SPACED, MALFORMED])
    assert correctness == [1.0, 0.5, 1.0, 0.0]
    assert d1_format == [0.5, 0.5, 0.25, 0.0]
    assert compact_format == [0.0, 0.0, 0.0, 0.0]
    assert correctness[0] + d1_format[0] == 1.5  # correct answer in the right format: 1.0 + format


def test_compact_style_values():
    correctness, d1_format, compact_format = _rewards([COMPACT_CORRECT, f" {HALF_RIGHT}\n", "12", "abc"])
    assert correctness == [1.0, 0.5, 0.125, 0.0]  # "12" is padded with '0': only blank 1 (a '2') is right
    assert compact_format == [0.5, 0.5, 0.0, 0.0]
    assert d1_format == [0.0, 0.0, 0.0, 0.0]


def test_conversational_completions_and_log_extra():
    logged = {}
    completions = [[{"role": "assistant", "content": D1_CORRECT}], [{"role": "assistant", "content": MALFORMED}]]
    rewards = sudoku_reward(
        prompts=[[{"role": "user", "content": "p"}]] * 2,
        completions=completions,
        completion_ids=[[0], [0]],
        puzzle=[PUZZLE, PUZZLE],
        solution=[SOLUTION, SOLUTION],
        num_blanks=[8, 8],
        trainer_state=None,
        log_extra=lambda name, values: logged.update({name: values}),
        log_metric=lambda name, value: None,
    )
    assert rewards == [1.0, 0.0]
    assert logged == {"sudoku_grid": [SOLUTION, ""]}


def test_valid_reward_accepts_every_solution():
    two_stored, two_other = TWO_SOLUTIONS
    three_first, three_stored, three_third = THREE_SOLUTIONS
    puzzles = [TWO_SOLUTION_PUZZLE, THREE_SOLUTION_PUZZLE, THREE_SOLUTION_PUZZLE, THREE_SOLUTION_PUZZLE, PUZZLE]
    stored = [two_stored, three_stored, three_stored, three_stored, SOLUTION]
    completions = [f"<answer>{g}</answer>" for g in (two_other, three_first, three_third, three_third[:15] + "4")]
    completions.append(D1_HALF)
    logged = {}
    valid = sudoku_valid_reward(
        None, completions, puzzle=puzzles, log_extra=lambda name, values: logged.update({name: values})
    )
    assert valid == [1.0, 1.0, 1.0, 7 / 8, 0.5]
    assert sudoku_reward(None, completions, puzzle=puzzles, solution=stored) == [0.0, 0.5, 1 / 8, 1 / 8, 0.5]
    assert logged["sudoku_grid"][0] == two_other
