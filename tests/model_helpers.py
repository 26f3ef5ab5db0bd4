"""What the `tests/test_models_*.py` files share besides their `tokenizer` fixture (in `tests/conftest.py`): the
tokenizer's alphabet and a padded batch of its token ids with the attention mask."""

from __future__ import annotations

import torch

#: Characters of the tiny models' tokenizer; its ids start after the special tokens.
ALPHABET = "abcdefghij0123456789+-= \n"
#: Two sequences of ids; the second is left-padded with two pad tokens (id 0).
X = torch.tensor([[2, 6, 9, 10, 8, 7, 4, 4, 4, 3], [0, 0, 2, 6, 11, 8, 7, 4, 4, 3]])
MASK = (X != 0).long()


def lora_with_random_b(model, target_modules):
    """`model` wrapped in a rank-4 LoRA on `target_modules`, in eval mode, its B matrices random (PEFT starts them at
    zero, which would make the adapter do nothing)."""
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=target_modules))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(0.5 * torch.randn(param.shape, generator=generator))
    return peft_model.eval()
