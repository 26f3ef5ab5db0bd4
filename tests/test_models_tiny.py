"""Offline builders: char tokenizer, tiny denoisers, and the contracts of the tiny LLaDA/Dream stand-ins."""

import pytest
import torch
from model_helpers import ALPHABET
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

from trl_dam.models import (
    TINY_KINDS,
    TinyDreamConfig,
    TinyDreamModel,
    TinyLLaDAConfig,
    TinyLLaDAModelLM,
    build_char_tokenizer,
    build_tiny_masked_lm,
)


def test_char_tokenizer_layout(tokenizer):
    assert tokenizer.convert_ids_to_tokens([0, 1, 2, 3, 4]) == ["<pad>", "<unk>", "<bos>", "<eos>", "<mask>"]
    assert (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.bos_token_id) == (0, 1, 2)
    assert (tokenizer.eos_token_id, tokenizer.mask_token_id) == (3, 4)
    assert tokenizer.convert_tokens_to_ids(["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]) == [5, 6, 7, 8]
    assert len(tokenizer) == 9 + len(ALPHABET)
    assert tokenizer.padding_side == "left"

    ids = tokenizer("ab 1\n")["input_ids"]
    assert ids == [9, 10, 9 + ALPHABET.index(" "), 9 + ALPHABET.index("1"), 9 + ALPHABET.index("\n")]
    assert tokenizer.decode(ids) == "ab 1\n"
    # special tokens stay whole, unknown characters become <unk>, no special tokens are added implicitly
    ids = tokenizer("a<mask><|user|>Z")["input_ids"]
    assert ids == [9, 4, 6, 1]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "a"

    batch = tokenizer(["ab", "a"], padding=True)
    assert batch["input_ids"] == [[9, 10], [0, 9]]
    assert batch["attention_mask"] == [[1, 1], [0, 1]]
    assert set(batch) == {"input_ids", "attention_mask"}


def test_char_tokenizer_extra_special_tokens_and_errors():
    tok = build_char_tokenizer(["x", "y", "x"], extra_special_tokens=["<answer>", "</answer>"])
    assert tok("<answer>xy</answer>")["input_ids"] == [9, 11, 12, 10]
    assert len(tok) == 13  # the duplicate "x" is dropped
    with pytest.raises(ValueError, match="single character"):
        build_char_tokenizer(["ab", "c"])
    with pytest.raises(ValueError, match="at least one character"):
        build_char_tokenizer("")
    with pytest.raises(ValueError, match="at least two characters"):
        build_char_tokenizer("ab", extra_special_tokens=["#"])


def test_char_tokenizer_roundtrip_and_chat_template(tokenizer, tmp_path):
    from trl.data_utils import maybe_apply_chat_template

    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    texts = ["1+2=3", "<|user|>ab<|end|>", "j\n9-0"]
    assert loaded(texts)["input_ids"] == tokenizer(texts)["input_ids"]
    assert loaded.get_vocab() == tokenizer.get_vocab()
    for attr in ("pad_token_id", "bos_token_id", "eos_token_id", "unk_token_id", "mask_token_id", "padding_side"):
        assert getattr(loaded, attr) == getattr(tokenizer, attr), attr

    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "1+2="}]
    prompt = maybe_apply_chat_template({"prompt": messages}, loaded)["prompt"]
    assert prompt == "<bos><|system|>be brief<|end|><|user|>1+2=<|end|><|assistant|>"
    encoded = loaded.apply_chat_template(messages[1:], add_generation_prompt=True, tokenize=True, return_dict=True)
    assert encoded["input_ids"] == [2, 6] + loaded("1+2=")["input_ids"] + [8, 7]
    with pytest.raises(Exception, match="Unsupported chat role"):
        loaded.apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)


@pytest.mark.parametrize("kind", TINY_KINDS)
def test_build_tiny_masked_lm(tokenizer, kind):
    rng_before = torch.random.get_rng_state()
    model = build_tiny_masked_lm(tokenizer, kind, seed=3)
    assert torch.equal(torch.random.get_rng_state(), rng_before), "the global RNG must be left alone"
    assert not model.training
    assert model.dtype == torch.float32
    assert model.config.vocab_size == len(tokenizer)

    same = build_tiny_masked_lm(tokenizer, kind, seed=3).state_dict()
    other = build_tiny_masked_lm(tokenizer, kind, seed=4).state_dict()
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, same[name], rtol=0, atol=0)
    assert any(not torch.equal(tensor, other[name]) for name, tensor in model.state_dict().items())

    x = torch.tensor([[2, 6, 9, 4, 4, 3]])
    with torch.no_grad():
        logits = model(input_ids=x).logits
    assert logits.shape == (1, 6, len(tokenizer))
    assert torch.isfinite(logits).all()
    assert logits.std() > 1e-3  # random weights, not a degenerate (e.g. all-zero) init


def test_build_tiny_masked_lm_errors(tokenizer):
    with pytest.raises(ValueError, match="Unknown tiny model kind"):
        build_tiny_masked_lm(tokenizer, "gpt2")
    with pytest.raises(ValueError, match="divisible"):
        build_tiny_masked_lm(tokenizer, "llada", hidden_size=30, num_heads=4)
    no_mask = build_char_tokenizer("ab")
    no_mask.mask_token = None
    with pytest.raises(ValueError, match="no mask token"):
        build_tiny_masked_lm(no_mask, "bert")
    with pytest.raises(ValueError, match="divisible"):
        TinyLLaDAConfig(d_model=10, n_heads=4)
    with pytest.raises(ValueError, match="embedding_size"):
        TinyLLaDAConfig(vocab_size=10, embedding_size=8)
    with pytest.raises(ValueError, match="divisible"):
        TinyDreamConfig(hidden_size=12, num_attention_heads=4, num_key_value_heads=3)


def test_config_overrides_win(tokenizer):
    model = build_tiny_masked_lm(tokenizer, "gemma", use_bidirectional_attention=False, num_key_value_heads=1)
    assert model.config.use_bidirectional_attention is False
    assert model.config.num_key_value_heads == 1
    llada = build_tiny_masked_lm(tokenizer, "llada", mask_token_id=7, embedding_size=len(tokenizer) + 3)
    assert llada.config.mask_token_id == 7
    assert llada.get_output_embeddings().out_features == len(tokenizer) + 3


def test_tiny_llada_contract(tokenizer):
    model = build_tiny_masked_lm(tokenizer, "llada")
    x = torch.tensor([[2, 6, 9, 4, 4, 3], [0, 0, 9, 10, 4, 3]])
    # LLaDA's module layout: LM head inside a plain-nn.Module backbone, LLaDA's linear names
    assert model.base_model_prefix == "model"
    assert model.get_output_embeddings() is model.model.transformer["ff_out"]
    block_names = {name.split(".")[-1] for name, _ in model.model.transformer["blocks"][0].named_children()}
    assert {"q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out"} <= block_names
    assert not model.supports_gradient_checkpointing
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    with pytest.raises(ValueError, match="does not support"):
        enable()
    with pytest.raises(ValueError, match="without `labels`"):
        model(input_ids=x, labels=x)
    with pytest.raises(ValueError, match="KV cache"):
        model(input_ids=x, use_cache=True)
    with pytest.raises(TypeError):
        model(input_ids=x, position_ids=x)  # like LLaDA, no position ids

    with torch.no_grad():
        out = model(input_ids=x)
        from_embeds = model(inputs_embeds=model.get_input_embeddings()(x)).logits
        as_tuple = model(input_ids=x, return_dict=False, output_hidden_states=True)
    torch.testing.assert_close(from_embeds, out.logits)
    torch.testing.assert_close(as_tuple[0], out.logits)
    assert len(as_tuple[1]) == model.config.n_layers + 1
    # registered like LLaDA's auto_map: AutoModel and AutoModelForCausalLM
    assert type(AutoModel.from_config(model.config)) is TinyLLaDAModelLM
    assert type(AutoModelForCausalLM.from_config(model.config)) is TinyLLaDAModelLM


def test_tiny_dream_contract(tokenizer):
    model = build_tiny_masked_lm(tokenizer, "dream")
    assert type(AutoModel.from_config(model.config)) is TinyDreamModel
    x = torch.tensor([[2, 6, 9, 4, 4, 3], [2, 6, 10, 11, 4, 3]])
    with torch.no_grad():
        reference = model(input_ids=x).logits
        for mask in ("full", torch.ones_like(x), torch.ones(2, 1, 6, 6, dtype=torch.bool)):
            torch.testing.assert_close(model(input_ids=x, attention_mask=mask).logits, reference)
        # a 2-D padding mask equals the same padding expressed as a 4-D boolean mask
        pad = torch.tensor([[0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
        four_d = pad.bool()[:, None, None, :].expand(2, 1, 6, 6)
        torch.testing.assert_close(
            model(input_ids=x, attention_mask=pad).logits, model(input_ids=x, attention_mask=four_d).logits
        )
    with pytest.raises(ValueError, match="only 'full'"):
        model(input_ids=x, attention_mask="causal")
    with pytest.raises(ValueError, match="without `labels`"):
        model(input_ids=x, labels=x)


def test_tiny_dream_gradient_checkpointing_gives_same_gradients(tokenizer):
    x = torch.tensor([[2, 6, 9, 4, 4, 3]])

    def grads(checkpointing: bool):
        model = build_tiny_masked_lm(tokenizer, "dream").train()
        if checkpointing:
            enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
            enable()
            assert model.model.gradient_checkpointing
        model(input_ids=x).logits.logsumexp(-1).sum().backward()
        return {name: p.grad for name, p in model.named_parameters()}

    plain, checkpointed = grads(False), grads(True)
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad)
