from trl_dam.metrics import load_metric
from trl_dam.rewards import get_reward_funcs
from trl_dam.tasks import generate_sudoku_dataset

# Puzzles are generated offline and seeded; the train and test splits never share a solution grid.
train = generate_sudoku_dataset(1000, seed=0, num_blanks=(4, 10), split="train")  # d1-style chat prompts
test = generate_sudoku_dataset(256, seed=1, num_blanks=8, split="test")  # d1's held-out set has 8 blanks
print(train.column_names)  # ['prompt', 'puzzle', 'solution', 'num_blanks']

# d1's rewards: blank-cell accuracy (max 1.0) + the format reward of the prompt style (max 0.5).
sudoku_reward, format_reward = get_reward_funcs("sudoku")
row = test[0]
completion = [
    {"role": "assistant", "content": f"<reasoning>\n...\n</reasoning>\n<answer>\n{row['solution']}\n</answer>"}
]
print(sudoku_reward([row["prompt"]], [completion], puzzle=[row["puzzle"]], solution=[row["solution"]]))  # [1.0]
print(format_reward([row["prompt"]], [completion]))  # [0.5]

# Evaluation: d1's "Sudoku accuracy" is the fraction of blank cells filled correctly (micro-averaged).
metric = load_metric("sudoku_accuracy")
print(metric.compute(predictions=[completion[0]["content"]], references=[row["solution"]], puzzles=[row["puzzle"]]))
