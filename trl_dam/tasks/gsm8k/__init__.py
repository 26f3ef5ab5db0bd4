"""GSM8K task: loader, prompts and answer extraction."""

from trl_dam.tasks.gsm8k.answers import (
    extract_gsm8k_answer,
    extract_gsm8k_gold,
    extract_gsm8k_tagged_answer,
    find_numbers,
    gsm8k_is_correct,
    numbers_match,
    parse_number,
)
from trl_dam.tasks.gsm8k.loader import GSM8K_HUB_ID, load_gsm8k
from trl_dam.tasks.gsm8k.prompts import (
    GSM8K_EVAL_INSTRUCTIONS,
    GSM8K_PROMPT_STYLES,
    build_gsm8k_prompt,
    format_gsm8k_prompt,
)

__all__ = [
    "GSM8K_EVAL_INSTRUCTIONS",
    "GSM8K_HUB_ID",
    "GSM8K_PROMPT_STYLES",
    "build_gsm8k_prompt",
    "extract_gsm8k_answer",
    "extract_gsm8k_gold",
    "extract_gsm8k_tagged_answer",
    "find_numbers",
    "format_gsm8k_prompt",
    "gsm8k_is_correct",
    "load_gsm8k",
    "numbers_match",
    "parse_number",
]
