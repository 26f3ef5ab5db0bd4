"""Reward functions with TRL's signature, called the way the trainer calls them."""

import asyncio
import re


# 1. The signature: keyword arguments, one float per completion. Dataset columns arrive under their own names
#    (here `solution`), one value per completion; **kwargs swallows everything else the trainer passes.
def exact_answer(prompts, completions, solution, **kwargs):
    return [1.0 if completion.strip() == answer else 0.0 for completion, answer in zip(completions, solution)]


# 2. Conversational prompts give conversational completions: a list with one assistant message each.
def short_answer(completions, **kwargs):
    texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
    return [1.0 if len(text) <= 8 else 0.0 for text in texts]


# 3. None abstains. In a multi-task dataset each reward scores its own task and returns None elsewhere; None is
#    left out of the weighted total and of `rewards/<name>/mean` (it is not a zero). Every completion needs at
#    least one number, or the trainer raises an error naming it.
def arithmetic_reward(completions, task, solution, **kwargs):
    return [
        (1.0 if re.sub(r"\s", "", c) == s else 0.0) if t == "arithmetic" else None
        for c, t, s in zip(completions, task, solution)
    ]


def spelling_reward(completions, task, solution, **kwargs):
    return [
        (1.0 if c.strip().lower() == s else 0.0) if t == "spelling" else None
        for c, t, s in zip(completions, task, solution)
    ]


# 4. Extra trainer arguments: `trainer_state` (step, epoch, ...) and `log_metric(name, value)`, which logs a scalar
#    next to the trainer's own metrics (averaged over the logging window).
def length_penalty(completions, trainer_state=None, log_metric=None, **kwargs):
    lengths = [len(c) for c in completions]
    if log_metric is not None:
        log_metric("completions/mean_chars", sum(lengths) / len(lengths))
    return [-0.01 * n for n in lengths]


# 5. Async rewards (e.g. a remote verifier) are awaited by the trainer.
async def remote_check(completions, **kwargs):
    await asyncio.sleep(0)  # stand-in for an HTTP call
    return [float("42" in c) for c in completions]


batch = {"task": ["arithmetic", "spelling"], "solution": ["4", "cat"]}
completions = ["4", " Cat "]
assert exact_answer(prompts=["2+2=", "spell it"], completions=completions, **batch) == [1.0, 0.0]
assert arithmetic_reward(completions=completions, **batch) == [1.0, None]
assert spelling_reward(completions=completions, **batch) == [None, 1.0]
assert short_answer(completions=[[{"role": "assistant", "content": "yes"}]]) == [1.0]
logged = {}
assert length_penalty(completions=["abc"], log_metric=logged.__setitem__) == [-0.03]
assert logged == {"completions/mean_chars": 3.0}
assert asyncio.run(remote_check(completions=["42", "41"])) == [1.0, 0.0]
