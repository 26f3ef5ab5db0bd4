"""Evaluation of masked diffusion LMs: decoding prompts into completions (:mod:`.decoding`) and d1's benchmark
protocol, task accuracy at generation lengths 128/256/512 with low-confidence block decoding (:mod:`.benchmark`).

The ``trl-dam-evaluate`` console script (:mod:`trl_dam.scripts.evaluate`) is its command-line front end.
"""

from .benchmark import (
    D1_BLOCK_LENGTH,
    D1_GENERATION_LENGTHS,
    TASK_EVALUATIONS,
    LengthResult,
    TaskEvaluation,
    check_decoding_settings,
    evaluate_generation_lengths,
    format_length_table,
    load_eval_dataset,
)
from .decoding import (
    DECODERS,
    MAX_DECODE_BATCH_SIZE,
    base_for_generation,
    completion_texts,
    decode_batch_size,
    decode_completions,
    eos_token_ids,
    policy_for_generation,
    prompt_canvas,
    tokenize_prompts,
)

__all__ = [
    "D1_BLOCK_LENGTH",
    "D1_GENERATION_LENGTHS",
    "DECODERS",
    "MAX_DECODE_BATCH_SIZE",
    "TASK_EVALUATIONS",
    "LengthResult",
    "TaskEvaluation",
    "base_for_generation",
    "check_decoding_settings",
    "completion_texts",
    "decode_batch_size",
    "decode_completions",
    "eos_token_ids",
    "evaluate_generation_lengths",
    "format_length_table",
    "load_eval_dataset",
    "policy_for_generation",
    "prompt_canvas",
    "tokenize_prompts",
]
