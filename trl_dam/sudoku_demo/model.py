"""The tiny Sudoku denoiser: a character tokenizer for the compact prompt format and a BERT-style masked LM.

The compact prompt is ``"4x4 sudoku: <16 digits>\\n"`` and the completion the 16 digits of the solved grid (end-of-
sequence tokens fill any longer canvas). The constant prefix ``"4x4 sudoku: "`` is one token of the tokenizer (a
word-level merge, as a BPE tokenizer would learn), so a prompt is 18 tokens and a 1x canvas 34.
"""

from __future__ import annotations

from transformers import PreTrainedModel, PreTrainedTokenizerFast

from trl_dam.models import build_char_tokenizer, build_tiny_masked_lm
from trl_dam.tasks.sudoku import SUDOKU_COMPACT_TEMPLATE

__all__ = ["SUDOKU_ALPHABET", "SUDOKU_PROMPT_PREFIX", "build_sudoku_model", "build_sudoku_tokenizer"]

SUDOKU_PROMPT_PREFIX = SUDOKU_COMPACT_TEMPLATE.split("{puzzle}")[0]
"""``"4x4 sudoku: "``: the constant part of the compact prompt, kept as a single token."""

SUDOKU_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz :\n"
"""Characters of the tokenizer: digits, lower-case letters, space, colon and newline."""


def build_sudoku_tokenizer() -> PreTrainedTokenizerFast:
    """A character-level tokenizer for the compact Sudoku format (``<pad>``, ``<eos>``, ``<mask>``, ... included).

    Every character of :data:`SUDOKU_ALPHABET` is a token and :data:`SUDOKU_PROMPT_PREFIX` is one more; prompts are
    left-padded. It saves and reloads with ``save_pretrained`` / ``AutoTokenizer.from_pretrained``.
    """
    return build_char_tokenizer(SUDOKU_ALPHABET, extra_special_tokens=[SUDOKU_PROMPT_PREFIX])


def build_sudoku_model(
    tokenizer: PreTrainedTokenizerFast,
    *,
    kind: str = "bert",
    hidden_size: int = 96,
    num_layers: int = 3,
    num_heads: int = 4,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 96,
    seed: int = 0,
) -> PreTrainedModel:
    """A randomly initialised bidirectional masked LM sized for the Sudoku format (float32, dropout off).

    Args:
        tokenizer: from :func:`build_sudoku_tokenizer` (its size and special ids configure the model).
        kind: a kind of :func:`~trl_dam.models.build_tiny_masked_lm` (``"bert"``: ``BertForMaskedLM``).
        hidden_size, num_layers, num_heads, intermediate_size: transformer sizes (``intermediate_size`` defaults to
            twice ``hidden_size``).
        max_position_embeddings: longest sequence (prompt + completion canvas); 96 covers a 4x canvas (18 + 64).
        seed: initialisation seed.
    """
    return build_tiny_masked_lm(
        tokenizer,
        kind=kind,
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
        seed=seed,
    )
