import json

from trl_dam.metrics import load_metric
from trl_dam.rewards import get_reward_funcs
from trl_dam.tasks import load_gsm8k

# load_gsm8k() reads openai/gsm8k ("main") from the Hub; any local copy with `question` and `answer` columns works
# too, which is how this example stays offline.
with open("gsm8k_sample.jsonl", "w") as f:
    f.write(json.dumps({"question": "Tom has 3 apples and buys 4 more. How many?", "answer": "3 + 4 = 7\n#### 7"}))
train = load_gsm8k("train", data_files="gsm8k_sample.jsonl")
print(train[0]["answer"])  # '7': the gold number, parsed from the text after '####'

# d1's five GSM8K rewards: XML tag count, soft and strict format, integer answer, correctness (max 4.0 in total).
funcs = get_reward_funcs("gsm8k")
completion = [{"role": "assistant", "content": "<reasoning>\n3 + 4 = 7\n</reasoning>\n<answer>\n7\n</answer>\n"}]
print({f.__name__: f([train[0]["prompt"]], [completion], answer=[train[0]["answer"]])[0] for f in funcs})

metric = load_metric("gsm8k_accuracy")
print(metric.compute(predictions=[completion[0]["content"]], references=[train[0]["answer"]]))  # accuracy 1.0
