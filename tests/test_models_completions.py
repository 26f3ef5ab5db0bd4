"""Where completions end: one rule for rewards, diffu-GRPO's completion mask and the evaluation decoders."""

from types import SimpleNamespace

import torch

from trl_dam.models import completion_lengths, completion_texts, cut_completions, eos_token_ids

EOS, EOT = 3, 7
IDS = torch.tensor([[5, 6, EOT, 5, EOS], [5, EOS, EOT, 6, 6], [5, 6, 6, 6, 6]])


def test_eos_ids_join_the_tokenizer_and_the_generation_config():
    tokenizer = SimpleNamespace(eos_token_id=EOS)
    assert eos_token_ids(tokenizer) == [EOS]
    model = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=[EOT, EOS]))
    assert eos_token_ids(tokenizer, model) == [EOS, EOT]
    assert eos_token_ids(SimpleNamespace(eos_token_id=None), SimpleNamespace(generation_config=None)) == []


def test_completions_end_at_their_first_end_of_sequence_token():
    assert completion_lengths(IDS, [EOS, EOT]).tolist() == [3, 2, 5]
    assert completion_lengths(IDS, [EOS]).tolist() == [5, 2, 5]
    assert cut_completions(IDS, [EOS, EOT]) == [[5, 6, EOT], [5, EOS], [5, 6, 6, 6, 6]]


def test_texts_drop_special_tokens_after_the_cut():
    class Tokenizer:
        def batch_decode(self, rows, skip_special_tokens):
            assert skip_special_tokens
            return ["".join("ab"[t - 5] for t in row if t not in (EOS, EOT)) for row in rows]

    assert completion_texts(Tokenizer(), IDS, [EOS, EOT]) == ["ab", "a", "abbbb"]
