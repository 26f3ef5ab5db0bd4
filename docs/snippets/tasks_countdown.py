from trl_dam.metrics import load_metric
from trl_dam.rewards import countdown_reward
from trl_dam.tasks import generate_countdown_dataset, solve_countdown

# Solvable problems (3 numbers in 1..100, a target in 1..100), generated offline with a reference solution.
train = generate_countdown_dataset(500, seed=0, split="train")
test = generate_countdown_dataset(50, seed=0, split="test")  # never shares a problem with the train split
row = test[0]
print(row["numbers"], row["target"], row["expression"])

# 1.0 for a correct expression, 0.1 for the right numbers with the wrong value, else 0.0.
right = f"<answer>\n{solve_countdown(row['numbers'], row['target'])}\n</answer>"
wrong = f"<answer>\n{'+'.join(map(str, row['numbers']))}\n</answer>"
rewards = countdown_reward(None, [right, wrong], numbers=[row["numbers"]] * 2, target=[row["target"]] * 2)
print(rewards)  # [1.0, 0.1] unless the sum happens to be the target

metric = load_metric("countdown_accuracy")
print(metric.compute(predictions=[right], references=[row["target"]], numbers=[row["numbers"]]))  # accuracy 1.0
