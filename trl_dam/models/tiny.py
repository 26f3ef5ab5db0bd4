"""Offline builders for tests, examples and benchmarks: a character-level tokenizer and tiny random denoisers.

Nothing here touches the network. Typical use::

    tokenizer = build_char_tokenizer("0123456789+-*/= ")
    model = build_tiny_masked_lm(tokenizer, kind="llada", seed=0)
    adapter = resolve_adapter(model, tokenizer)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from .tiny_dream import TinyDreamConfig, TinyDreamModel
from .tiny_llada import TinyLLaDAConfig, TinyLLaDAModelLM

PAD_TOKEN, UNK_TOKEN, BOS_TOKEN, EOS_TOKEN, MASK_TOKEN = "<pad>", "<unk>", "<bos>", "<eos>", "<mask>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>")
CORE_SPECIAL_TOKENS = (PAD_TOKEN, UNK_TOKEN, BOS_TOKEN, EOS_TOKEN, MASK_TOKEN)

#: `<bos><|user|>content<|end|>...<|assistant|>`; any role other than system/user/assistant is an error.
DEFAULT_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('Unsupported chat role: ' + message['role']) }}"
    "{% endif %}"
    "<|{{ message['role'] }}|>{{ message['content'] }}<|end|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

TINY_KINDS = ("bert", "modernbert", "gemma", "llada", "dream")


def build_char_tokenizer(
    chars: str | Sequence[str],
    extra_special_tokens: Iterable[str] = (),
    *,
    chat_template: str | None = DEFAULT_CHAT_TEMPLATE,
    padding_side: str = "left",
) -> PreTrainedTokenizerFast:
    """A character-level fast tokenizer: every character of `chars` is one token.

    Ids: 0 `<pad>`, 1 `<unk>`, 2 `<bos>`, 3 `<eos>`, 4 `<mask>`, then the role tokens `<|system|>`, `<|user|>`,
    `<|assistant|>`, `<|end|>`, then `extra_special_tokens` (kept whole, never split), then the characters in order
    of first appearance. Unknown characters map to `<unk>`. No special tokens are added when encoding (the chat
    template adds `<bos>`). It round-trips through `save_pretrained` / `AutoTokenizer.from_pretrained`.

    Args:
        chars: the alphabet, as a string or a sequence of one-character strings (include " " and "\\n" if needed).
        extra_special_tokens: more multi-character tokens to keep whole (e.g. "<answer>").
        chat_template: Jinja chat template (default: `DEFAULT_CHAT_TEMPLATE`); `None` for none.
        padding_side: "left" (TRL's convention for prompts) or "right".
    """
    alphabet = list(chars)
    if not alphabet:
        raise ValueError("`chars` must contain at least one character.")
    bad = [c for c in alphabet if not isinstance(c, str) or len(c) != 1]
    if bad:
        raise ValueError(f"Every entry of `chars` must be a single character; got {bad[:5]!r}.")
    specials = list(dict.fromkeys([*CORE_SPECIAL_TOKENS, *ROLE_TOKENS, *extra_special_tokens]))
    too_short = [t for t in specials if len(t) < 2]
    if too_short:
        raise ValueError(f"Special tokens must be at least two characters long; got {too_short!r}.")
    vocab = {token: i for i, token in enumerate(specials)}
    for char in dict.fromkeys(alphabet):
        vocab[char] = len(vocab)

    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
    backend.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens(specials)  # otherwise special tokens would be split into characters
    extra = specials[len(CORE_SPECIAL_TOKENS) :]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        mask_token=MASK_TOKEN,
        extra_special_tokens=extra,
        padding_side=padding_side,
        model_input_names=["input_ids", "attention_mask"],
    )
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer


def _tiny_config(
    tokenizer,
    kind: str,
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    intermediate_size: int,
    max_position_embeddings: int,
    **overrides,
):
    """Config for `build_tiny_masked_lm`; `overrides` win over every default."""
    from transformers import BertConfig, GemmaConfig, ModernBertConfig  # imported lazily: only tests need them

    ids = {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    hf_sizes = {
        "hidden_size": hidden_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": num_heads,
        "intermediate_size": intermediate_size,
        "max_position_embeddings": max_position_embeddings,
    }
    if kind == "bert":
        config_class = BertConfig
        defaults = {**ids, **hf_sizes, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    elif kind == "modernbert":
        config_class = ModernBertConfig
        defaults = {
            **ids,
            **hf_sizes,
            "layer_types": ["full_attention"] * num_layers,
            "cls_token_id": tokenizer.bos_token_id,
            "sep_token_id": tokenizer.eos_token_id,
        }
    elif kind == "gemma":
        config_class = GemmaConfig
        defaults = {
            **ids,
            **hf_sizes,
            "num_key_value_heads": num_heads,
            "head_dim": hidden_size // num_heads,
            "use_bidirectional_attention": True,
            "is_causal": False,  # see adapters.ensure_bidirectional_padding_mask
        }
    elif kind == "llada":
        config_class = TinyLLaDAConfig
        defaults = {
            **ids,
            "d_model": hidden_size,
            "n_layers": num_layers,
            "n_heads": num_heads,
            "mlp_hidden_size": intermediate_size,
            "max_sequence_length": max_position_embeddings,
            "mask_token_id": tokenizer.mask_token_id,
        }
    elif kind == "dream":
        config_class = TinyDreamConfig
        defaults = {**ids, **hf_sizes, "mask_token_id": tokenizer.mask_token_id}
    else:
        raise ValueError(f"Unknown tiny model kind {kind!r}; expected one of {TINY_KINDS}.")
    return config_class(**{**defaults, **overrides})


def _model_class(kind: str) -> type[PreTrainedModel]:
    import transformers

    names = {"bert": "BertForMaskedLM", "modernbert": "ModernBertForMaskedLM", "gemma": "GemmaForCausalLM"}
    if kind in names:
        return getattr(transformers, names[kind])
    return {"llada": TinyLLaDAModelLM, "dream": TinyDreamModel}[kind]


def build_tiny_masked_lm(
    tokenizer,
    kind: str = "gemma",
    *,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 128,
    seed: int = 0,
    **config_overrides,
) -> PreTrainedModel:
    """A randomly initialised tiny denoiser (float32, eval mode) sized to `tokenizer` (a mask token is required).

    Kinds: "bert" (`BertForMaskedLM`), "modernbert" (`ModernBertForMaskedLM`), "gemma" (`GemmaForCausalLM` with
    `use_bidirectional_attention=True`), "llada" ([`TinyLLaDAModelLM`], mask id in its config) and "dream"
    ([`TinyDreamModel`], shifted logits, mask id in its config). The vocabulary size is `len(tokenizer)` and the
    pad/bos/eos ids come from the tokenizer. Dropout is off. The same `seed` gives the same weights; the global RNG
    state is left untouched. `config_overrides` go to the config constructor.
    """
    if kind not in TINY_KINDS:
        raise ValueError(f"Unknown tiny model kind {kind!r}; expected one of {TINY_KINDS}.")
    if tokenizer.mask_token_id is None:
        raise ValueError("The tokenizer has no mask token; masked diffusion needs one (see build_char_tokenizer).")
    if hidden_size % num_heads:
        raise ValueError(f"hidden_size ({hidden_size}) must be divisible by num_heads ({num_heads}).")
    intermediate_size = intermediate_size if intermediate_size is not None else 2 * hidden_size
    config = _tiny_config(
        tokenizer,
        kind,
        hidden_size,
        num_layers,
        num_heads,
        intermediate_size,
        max_position_embeddings,
        **config_overrides,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _model_class(kind)(config)
    return model.eval()
