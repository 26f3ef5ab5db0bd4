"""A project-owned, Dream-shaped tiny masked diffusion LM for offline tests.

It reproduces the *interface* of the remote-code `DreamModel` (Dream-org/Dream-v0-*-7B), not its code:

* Qwen2-style config fields (`hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
  num_key_value_heads, rope_theta, ...`) plus `mask_token_id`;
* `model(input_ids, attention_mask=None, position_ids=None).logits` -> [B, L, vocab_size] with bidirectional attention;
* the **shifted prediction convention**: Dream was adapted from an autoregressive LM, so the raw logits at position
  i - 1 describe token i. Callers align them with `cat([logits[:, :1], logits[:, :-1]], dim=1)` (the Dream adapter
  does this); the raw output of this model is never shifted;
* `attention_mask` may be `None`, the string `"full"` (no masking, Dream's sampler convention), a [B, L] padding mask,
  or a [B, 1, L, L] boolean / additive mask used as is;
* gradient-checkpointing support (unlike LLaDA), via the standard transformers `gradient_checkpointing` attribute.

The model type is "tiny_dream" (not "Dream") so it can never clash with a real hub config; the adapters treat it
exactly like Dream. Importing `trl_dam.models` registers it with `AutoConfig` and `AutoModel`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput

from ._layers import TinyRMSNorm, apply_rotary, bidirectional_attention, key_padding_mask, rotary_cos_sin

TINY_DREAM_MODEL_TYPE = "tiny_dream"


class TinyDreamConfig(PretrainedConfig):
    """Configuration of [`TinyDreamModel`], with Qwen2/Dream field names.

    Args:
        vocab_size: number of tokens (rows of the embedding and the LM head).
        hidden_size: hidden size.
        intermediate_size: inner size of the MLP.
        num_hidden_layers: number of transformer layers.
        num_attention_heads: attention heads.
        num_key_value_heads: key/value heads; defaults to `num_attention_heads`.
        max_position_embeddings: informational (RoPE needs no table).
        mask_token_id: id of the mask token; `None` leaves it to the tokenizer.
    """

    model_type = TINY_DREAM_MODEL_TYPE

    def __init__(
        self,
        vocab_size: int = 64,
        hidden_size: int = 64,
        intermediate_size: int = 128,
        num_hidden_layers: int = 2,
        num_attention_heads: int = 4,
        num_key_value_heads: int | None = None,
        max_position_embeddings: int = 512,
        rope_theta: float = 10000.0,
        rms_norm_eps: float = 1e-6,
        initializer_range: float = 0.02,
        attention_dropout: float = 0.0,
        mask_token_id: int | None = None,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_key_value_heads if num_key_value_heads is not None else num_attention_heads
        self.max_position_embeddings = max_position_embeddings
        self.rope_theta = rope_theta
        self.rms_norm_eps = rms_norm_eps
        self.initializer_range = initializer_range
        self.attention_dropout = attention_dropout
        self.mask_token_id = mask_token_id
        kwargs.setdefault("tie_word_embeddings", False)
        kwargs.setdefault("use_cache", False)
        super().__init__(**kwargs)
        if self.hidden_size % self.num_attention_heads or self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads}) and that by num_key_value_heads ({self.num_key_value_heads})."
            )


class TinyDreamAttention(nn.Module):
    def __init__(self, config: TinyDreamConfig):
        super().__init__()
        self.n_heads, self.n_kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.dropout = config.attention_dropout
        self.q_proj = nn.Linear(config.hidden_size, self.n_heads * self.head_dim, bias=True)
        self.k_proj = nn.Linear(config.hidden_size, self.n_kv_heads * self.head_dim, bias=True)
        self.v_proj = nn.Linear(config.hidden_size, self.n_kv_heads * self.head_dim, bias=True)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, config.hidden_size, bias=False)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, cos: torch.Tensor, sin: torch.Tensor
    ) -> torch.Tensor:
        """x: [B, L, E]; mask: broadcastable to [B, H, L, L] or None; cos/sin: [B, 1, L, D] -> [B, L, E]."""
        batch, length, _ = x.shape
        q = self.q_proj(x).view(batch, length, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(batch, length, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(batch, length, self.n_kv_heads, self.head_dim).transpose(1, 2)
        dropout = self.dropout if self.training else 0.0
        attn = bidirectional_attention(apply_rotary(q, cos, sin), apply_rotary(k, cos, sin), v, mask, dropout)
        return self.o_proj(attn.transpose(1, 2).reshape(batch, length, -1))


class TinyDreamMLP(nn.Module):
    def __init__(self, config: TinyDreamConfig):
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class TinyDreamLayer(nn.Module):
    def __init__(self, config: TinyDreamConfig):
        super().__init__()
        self.input_layernorm = TinyRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = TinyDreamAttention(config)
        self.post_attention_layernorm = TinyRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = TinyDreamMLP(config)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, cos: torch.Tensor, sin: torch.Tensor
    ) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), mask, cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class TinyDreamBackbone(nn.Module):
    """Embeddings + layers + final norm (Dream's `DreamBaseModel`). Supports gradient checkpointing per layer."""

    def __init__(self, config: TinyDreamConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(TinyDreamLayer(config) for _ in range(config.num_hidden_layers))
        self.norm = TinyRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.gradient_checkpointing = False

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        mask: torch.Tensor | None,
        position_ids: torch.LongTensor,
        output_hidden_states: bool = False,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        """inputs_embeds: [B, L, E]; mask: SDPA mask or None; position_ids: [B, L] -> (normed hidden [B, L, E], all)."""
        head_dim = self.config.hidden_size // self.config.num_attention_heads
        cos, sin = rotary_cos_sin(position_ids, head_dim, self.config.rope_theta, inputs_embeds.dtype)
        x = inputs_embeds
        hidden = [x] if output_hidden_states else None
        for layer in self.layers:
            if self.gradient_checkpointing and self.training:
                x = self._gradient_checkpointing_func(layer.__call__, x, mask, cos, sin)
            else:
                x = layer(x, mask, cos, sin)
            if hidden is not None:
                hidden.append(x)
        return self.norm(x), tuple(hidden) if hidden is not None else None


def _dream_attention_mask(attention_mask, batch: int, length: int) -> torch.Tensor | None:
    """Normalise Dream's accepted attention-mask forms into an SDPA mask (or None for full attention)."""
    if attention_mask is None or isinstance(attention_mask, str):
        if attention_mask not in (None, "full"):
            raise ValueError(f"Unknown attention_mask string {attention_mask!r}; only 'full' is accepted.")
        return None
    if attention_mask.dim() == 2:
        return key_padding_mask(attention_mask)
    if attention_mask.dim() == 4:
        if attention_mask.shape[0] not in (1, batch) or attention_mask.shape[-1] != length:
            raise ValueError(
                f"4-D attention_mask of shape {tuple(attention_mask.shape)} does not match [B={batch}, L={length}]."
            )
        return attention_mask
    raise ValueError(
        f"attention_mask must be None, 'full', [B, L] or [B, 1, L, L]; got {tuple(attention_mask.shape)}."
    )


class TinyDreamModel(PreTrainedModel):
    """Tiny Dream-shaped masked diffusion LM (raw logits follow the shifted convention; see the module docstring)."""

    config_class = TinyDreamConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["TinyDreamLayer"]
    _supports_sdpa = True

    def __init__(self, config: TinyDreamConfig):
        super().__init__(config)
        self.model = TinyDreamBackbone(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | str | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        past_key_values=None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> MaskedLMOutput | tuple:
        """Denoiser forward pass.

        Args:
            input_ids: [B, L] token ids, or `inputs_embeds` [B, L, E].
            attention_mask: None / "full" / [B, L] padding mask / [B, 1, L, L] mask (True or 0.0 = attend).
            position_ids: [B, L] RoPE positions; defaults to 0..L-1 for every row.

        Returns:
            `MaskedLMOutput` with raw (unshifted) `logits` [B, L, vocab_size]: `logits[:, i - 1]` scores token i.
        """
        if labels is not None:
            raise ValueError("TinyDreamModel computes no loss: call it without `labels`.")
        if use_cache or past_key_values is not None:
            raise ValueError("TinyDreamModel has no KV cache: `use_cache` must be off.")
        if output_attentions:
            raise ValueError("TinyDreamModel does not return attention weights.")
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of `input_ids` or `inputs_embeds`.")
        if inputs_embeds is None:
            inputs_embeds = self.model.embed_tokens(input_ids)
        batch, length, _ = inputs_embeds.shape
        if position_ids is None:
            position_ids = torch.arange(length, device=inputs_embeds.device).expand(batch, length)
        mask = _dream_attention_mask(attention_mask, batch, length)
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        hidden_state, hidden = self.model(inputs_embeds, mask, position_ids, bool(output_hidden_states))
        logits = self.lm_head(hidden_state)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if not return_dict:
            return (logits,) if hidden is None else (logits, hidden)
        return MaskedLMOutput(logits=logits, hidden_states=hidden)
