"""What the `tests/test_models_*.py` files share besides their `tokenizer` fixture (in `tests/conftest.py`): the
tokenizer's alphabet and a padded batch of its token ids with the attention mask."""

from __future__ import annotations

import torch

#: Characters of the tiny models' tokenizer; its ids start after the special tokens.
ALPHABET = "abcdefghij0123456789+-= \n"
#: Two sequences of ids; the second is left-padded with two pad tokens (id 0).
X = torch.tensor([[2, 6, 9, 10, 8, 7, 4, 4, 4, 3], [0, 0, 2, 6, 11, 8, 7, 4, 4, 3]])
MASK = (X != 0).long()
