"""A project-owned, LLaDA-shaped tiny masked diffusion LM for offline tests.

It reproduces the *interface* of the remote-code `LLaDAModelLM` (GSAI-ML/LLaDA-8B-*), not its code:

* config fields `d_model, n_layers, n_heads, n_kv_heads, mlp_hidden_size, vocab_size, embedding_size, mask_token_id`;
* `model(input_ids, attention_mask=None).logits` -> [B, L, embedding_size], bidirectional, logits at position i
  describe token i (no shift), no time conditioning, no labels / loss, no KV cache;
* the LM head lives inside the backbone (`model.model.transformer.ff_out`), `base_model_prefix = "model"`, and the
  backbone is a plain `nn.Module`;
* block linears named like LLaDA's (`q_proj, k_proj, v_proj, attn_out, ff_proj, up_proj, ff_out`), so LoRA target
  lists written for LLaDA apply unchanged;
* no transformers gradient-checkpointing support (`supports_gradient_checkpointing = False`); like LLaDA's OLMo-derived
  backbone, the backbone has its own `set_activation_checkpointing(strategy)` (`"whole_layer"`, `"one_in_two"`,
  `"one_in_three"`, `"one_in_four"` or `None`), read at every forward, training or not, and checkpoints blocks with
  its `_activation_checkpoint_fn`.

The model type is "tiny_llada" (not "llada") so it can never clash with a real hub config; the adapters treat it
exactly like LLaDA. Importing `trl_dam.models` registers it with `AutoConfig`, `AutoModel` and
`AutoModelForCausalLM` (LLaDA's `auto_map` lists the latter two).
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from ._layers import TinyRMSNorm, apply_rotary, bidirectional_attention, key_padding_mask, rotary_cos_sin
from .activation_checkpointing import OWN_STRATEGIES

TINY_LLADA_MODEL_TYPE = "tiny_llada"


class TinyLLaDAConfig(PretrainedConfig):
    """Configuration of [`TinyLLaDAModelLM`], with LLaDA's field names.

    Args:
        vocab_size: number of tokens the tokenizer can produce.
        embedding_size: rows of the embedding / LM head (LLaDA may pad it above `vocab_size`); defaults to
            `vocab_size`. The logits' last dimension is `embedding_size`.
        d_model: hidden size.
        n_layers: number of transformer blocks.
        n_heads: attention heads.
        n_kv_heads: key/value heads; defaults to `n_heads`.
        mlp_hidden_size: inner size of the MLP.
        max_sequence_length: informational (RoPE needs no table).
        mask_token_id: id of the mask token; `None` leaves it to the tokenizer / adapter defaults.
    """

    model_type = TINY_LLADA_MODEL_TYPE

    def __init__(
        self,
        vocab_size: int = 64,
        embedding_size: int | None = None,
        d_model: int = 64,
        n_layers: int = 2,
        n_heads: int = 4,
        n_kv_heads: int | None = None,
        mlp_hidden_size: int = 128,
        max_sequence_length: int = 512,
        rope_theta: float = 10000.0,
        rms_norm_eps: float = 1e-5,
        initializer_range: float = 0.02,
        mask_token_id: int | None = None,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size if embedding_size is not None else vocab_size
        self.d_model = d_model
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads if n_kv_heads is not None else n_heads
        self.mlp_hidden_size = mlp_hidden_size
        self.max_sequence_length = max_sequence_length
        self.rope_theta = rope_theta
        self.rms_norm_eps = rms_norm_eps
        self.initializer_range = initializer_range
        self.mask_token_id = mask_token_id
        kwargs.setdefault("tie_word_embeddings", False)  # LLaDA: weight_tying false
        kwargs.setdefault("use_cache", False)
        super().__init__(**kwargs)
        if self.d_model % self.n_heads or self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads}) and n_heads by "
                f"n_kv_heads ({self.n_kv_heads})."
            )
        if self.embedding_size < self.vocab_size:
            raise ValueError(f"embedding_size ({self.embedding_size}) must be >= vocab_size ({self.vocab_size}).")


class TinyLLaDABlock(nn.Module):
    """Pre-norm transformer block (bidirectional attention + SwiGLU MLP) with LLaDA's module names."""

    def __init__(self, config: TinyLLaDAConfig):
        super().__init__()
        self.n_heads, self.n_kv_heads = config.n_heads, config.n_kv_heads
        self.head_dim = config.d_model // config.n_heads
        kv_width = self.n_kv_heads * self.head_dim
        self.attn_norm = TinyRMSNorm(config.d_model, config.rms_norm_eps)
        self.q_proj = nn.Linear(config.d_model, config.d_model, bias=False)
        self.k_proj = nn.Linear(config.d_model, kv_width, bias=False)
        self.v_proj = nn.Linear(config.d_model, kv_width, bias=False)
        self.attn_out = nn.Linear(config.d_model, config.d_model, bias=False)
        self.ff_norm = TinyRMSNorm(config.d_model, config.rms_norm_eps)
        self.ff_proj = nn.Linear(config.d_model, config.mlp_hidden_size, bias=False)  # gate
        self.up_proj = nn.Linear(config.d_model, config.mlp_hidden_size, bias=False)
        self.ff_out = nn.Linear(config.mlp_hidden_size, config.d_model, bias=False)  # down

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, cos: torch.Tensor, sin: torch.Tensor
    ) -> torch.Tensor:
        """x: [B, L, E]; mask: bool [B, 1, 1, L] or None; cos/sin: [B, 1, L, D] -> [B, L, E]."""
        batch, length, _ = x.shape
        h = self.attn_norm(x)
        q = self.q_proj(h).view(batch, length, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(h).view(batch, length, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(h).view(batch, length, self.n_kv_heads, self.head_dim).transpose(1, 2)
        attn = bidirectional_attention(apply_rotary(q, cos, sin), apply_rotary(k, cos, sin), v, mask)
        x = x + self.attn_out(attn.transpose(1, 2).reshape(batch, length, -1))
        h = self.ff_norm(x)
        return x + self.ff_out(F.silu(self.ff_proj(h)) * self.up_proj(h))


#: Activation-checkpointing strategies of the backbone (LLaDA's names) -> every how many blocks one is checkpointed.
CHECKPOINT_EVERY = {strategy: every for every, strategy in OWN_STRATEGIES.items()}


class TinyLLaDABackbone(nn.Module):
    """Plain `nn.Module` backbone (like LLaDA's `LLaDAModel`) holding embeddings, blocks, final norm and LM head."""

    def __init__(self, config: TinyLLaDAConfig):
        super().__init__()
        self.config = config
        self.activation_checkpointing_strategy: str | None = None
        self._activation_checkpoint_fn = functools.partial(checkpoint, use_reentrant=False)
        self.transformer = nn.ModuleDict(
            {
                "wte": nn.Embedding(config.embedding_size, config.d_model),
                "blocks": nn.ModuleList(TinyLLaDABlock(config) for _ in range(config.n_layers)),
                "ln_f": TinyRMSNorm(config.d_model, config.rms_norm_eps),
                "ff_out": nn.Linear(config.d_model, config.embedding_size, bias=False),
            }
        )

    def set_activation_checkpointing(self, strategy: str | None) -> None:
        """Checkpoint every block (`"whole_layer"`), one in 2, 3 or 4 (`"one_in_two"`, ...), or none (`None`)."""
        if strategy is not None and strategy not in CHECKPOINT_EVERY:
            raise ValueError(f"strategy must be None or one of {sorted(CHECKPOINT_EVERY)}, got {strategy!r}")
        self.activation_checkpointing_strategy = strategy

    def forward(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None, output_hidden_states: bool = False
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        """inputs_embeds: [B, L, E]; attention_mask: [B, L] or None -> (logits [B, L, embedding_size], hidden states)."""
        batch, length, _ = inputs_embeds.shape
        positions = torch.arange(length, device=inputs_embeds.device).expand(batch, length)
        cos, sin = rotary_cos_sin(
            positions, self.config.d_model // self.config.n_heads, self.config.rope_theta, inputs_embeds.dtype
        )
        mask = key_padding_mask(attention_mask)
        x = inputs_embeds
        hidden = [x] if output_hidden_states else None
        every = CHECKPOINT_EVERY.get(self.activation_checkpointing_strategy)
        for index, block in enumerate(self.transformer["blocks"]):
            if every and index % every == 0:
                x = self._activation_checkpoint_fn(block, x, mask, cos, sin)
            else:
                x = block(x, mask, cos, sin)
            if hidden is not None:
                hidden.append(x)
        logits = self.transformer["ff_out"](self.transformer["ln_f"](x))
        return logits, tuple(hidden) if hidden is not None else None


class TinyLLaDAModelLM(PreTrainedModel):
    """Tiny LLaDA-shaped masked diffusion LM. See the module docstring for the contract it reproduces."""

    config_class = TinyLLaDAConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = False
    _no_split_modules = ["TinyLLaDABlock"]
    _supports_sdpa = True

    def __init__(self, config: TinyLLaDAConfig):
        super().__init__(config)
        self.model = TinyLLaDABackbone(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.transformer["wte"]

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.transformer["wte"] = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.model.transformer["ff_out"]

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.model.transformer["ff_out"] = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        past_key_values=None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> CausalLMOutputWithPast | tuple:
        """Denoiser forward pass.

        Args:
            input_ids: [B, L] token ids (mask tokens included), or `inputs_embeds` [B, L, E].
            attention_mask: optional [B, L] (1 = token, 0 = padding); padded keys are hidden from every query.

        Returns:
            `CausalLMOutputWithPast` with `logits` [B, L, embedding_size]; `logits[:, i]` scores token i.
        """
        if labels is not None:
            raise ValueError("TinyLLaDAModelLM (like LLaDA) computes no loss: call it without `labels`.")
        if use_cache or past_key_values is not None:
            raise ValueError("TinyLLaDAModelLM (like LLaDA) has no KV cache: `use_cache` must be off.")
        if output_attentions:
            raise ValueError("TinyLLaDAModelLM does not return attention weights.")
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of `input_ids` or `inputs_embeds`.")
        if inputs_embeds is None:
            inputs_embeds = self.model.transformer["wte"](input_ids)
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        logits, hidden = self.model(inputs_embeds, attention_mask, bool(output_hidden_states))
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if not return_dict:
            return (logits,) if hidden is None else (logits, hidden)
        return CausalLMOutputWithPast(logits=logits, hidden_states=hidden)
