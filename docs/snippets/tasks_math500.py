import json

from trl_dam.metrics import load_metric
from trl_dam.rewards import get_reward_funcs
from trl_dam.tasks import load_math500

# load_math500("test") reads HuggingFaceH4/MATH-500 from the Hub (d1 trains on load_math500("train",
# path=MATH_TRAIN_HUB_ID)); a local file with `problem` and `answer` (or `solution`) columns works offline.
with open("math_sample.jsonl", "w") as f:
    f.write(
        json.dumps({"problem": "What is $\\frac{1}{2} + \\frac{1}{4}$?", "solution": "It is $\\boxed{\\frac34}$."})
    )
test = load_math500("test", data_files="math_sample.jsonl", prompt_style="d1_eval")
print(test[0]["answer"])  # '\frac34': the last \boxed{} of the solution

# Correctness (2.0, equivalence decided by math-verify) + boxed/answer-tag format (max 3.0 in total).
correctness, format_reward = get_reward_funcs("math500")
completion = "<reasoning>\n1/2 + 1/4 = 3/4\n</reasoning>\n<answer>\n\\boxed{0.75}\n</answer>"
print(correctness([test[0]["prompt"]], [completion], answer=[test[0]["answer"]]))  # [2.0]: 0.75 == 3/4

metric = load_metric("math500_accuracy")
print(metric.compute(predictions=[completion], references=[test[0]["answer"]]))  # accuracy 1.0
