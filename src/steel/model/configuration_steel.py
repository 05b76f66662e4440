"""SteelConfig: the configuration of the Steel decoder (a Qwen2-style decoder with a selectable FFN).

Self-contained on purpose: this file imports only transformers, because `steel export` copies it next
to `modeling_steel.py` into a plain HF directory that is loaded with `trust_remote_code=True`.

The defaults reproduce the released Steel-LLM (1,122,922,770 parameters; see `configs/model/steel-1b.yaml`).
"""

from __future__ import annotations

from dataclasses import field, is_dataclass

import transformers
from transformers import PretrainedConfig

if not is_dataclass(PretrainedConfig):  # 5.0-5.3: the fields below would be class attributes, never set
    raise ImportError(f"SteelConfig needs transformers >= 5.4 (dataclass configs); this is {transformers.__version__}")

FFN_TYPES = ("swiglu", "senet", "soft_moe_v1", "soft_moe_v2", "soft_moe_v3", "soft_moe_causal")
EXPERT_TYPES = ("senet", "swiglu")
# FFN variants that mix positions of the sequence and read the future (see README, "The model").
LEAKING_FFN_TYPES = ("soft_moe_v2", "soft_moe_v3")
# Values of `kernels:` per op: (reference, fused). Kept here too (this file must import nothing from steel:
# exports carry it alone); tests/model assert it equals steel.kernels.KERNEL_CHOICES.
KERNEL_CHOICES = {"rmsnorm": ("torch", "triton"), "rope": ("torch", "triton"), "silu_mul": ("torch", "triton"),
                  "cross_entropy": ("torch", "fused")}
KERNEL_NAMES = tuple(KERNEL_CHOICES)


class SteelConfig(PretrainedConfig):
    model_type = "steel"
    keys_to_ignore_at_inference = ["past_key_values", "cache"]
    default_theta = 1_000_000.0  # RoPE base when neither rope_parameters nor rope_theta is given (Steel-LLM)

    vocab_size: int = 151936  # Qwen vocabulary (151,643 BPE tokens + special tokens, padded)
    hidden_size: int = 1792  # model width C
    intermediate_size: int = 1792  # SwiGLU width; SENet/expert width is intermediate_size // mlp_div_ratio
    num_hidden_layers: int = 18
    num_attention_heads: int = 32
    num_key_value_heads: int | None = None  # None = num_attention_heads (no GQA)
    head_dim: int | None = None  # None = hidden_size // num_attention_heads
    hidden_act: str = "silu"  # activation of every gated block (SwiGLU, SENet)
    # RoPE has no learned positions; generate/chat/eval refuse to go past this (no silent extrapolation)
    max_position_embeddings: int = 2048
    initializer_range: float = 0.02  # std of normal init for every Linear/Embedding except the soft-MoE router
    rms_norm_eps: float = 1e-6
    use_cache: bool = True  # KV cache in generate(); the model turns it off in training mode
    tie_word_embeddings: bool = False  # Steel-LLM unties lm_head from embed_tokens
    rope_parameters: dict | None = None  # HF rope dict; `rope_theta: 1e6` is accepted as a shortcut
    attention_bias: bool = True  # bias on q/k/v projections (Qwen); o_proj never has one
    attention_dropout: float = 0.0
    ffn_type: str = "soft_moe_v3"  # one of FFN_TYPES
    expert_type: str = "senet"  # expert block inside the soft-MoE variants: one of EXPERT_TYPES
    mlp_div_ratio: int = 4  # SENet / expert inner width = intermediate_size // mlp_div_ratio
    num_experts: int = 6  # experts of the soft-MoE variants
    slots_per_expert: int = 1  # soft-MoE slots p per expert (v2, v3, causal)
    moe_chunk_size: int = 1  # soft_moe_causal: slots are rebuilt every this many tokens (1 = every token)
    document_mask: bool = False  # packed rows: positions restart after EOS, attention stays inside a document
    kernels: dict = field(default_factory=dict)  # {rmsnorm|rope|silu_mul|cross_entropy: "torch"|other}; other = steel.kernels
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = 151643  # Qwen <|endoftext|>; used by document_mask
    layer_types: list[str] | None = None  # HF mask/cache plumbing: all "full_attention"

    def __post_init__(self, **kwargs):
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.head_dim is None and self.num_attention_heads:
            heads, width = self.num_attention_heads, self.hidden_size
            if isinstance(heads, int) and isinstance(width, int) and heads > 0 and width % heads:
                # (as LlamaConfig) the floor made the attention narrower than the model unsaid: 1800 / 32 -> 56 x 32
                raise ValueError(f"hidden_size: must be a multiple of num_attention_heads ({heads}) when head_dim is "
                                 f"not given (got {width}); set head_dim for another attention width")
            self.head_dim = self.hidden_size // self.num_attention_heads
        if self.layer_types is None or (set(self.layer_types) == {"full_attention"}
                                        and len(self.layer_types) != self.num_hidden_layers):
            # (a saved config carries layer_types of its own depth: `num_hidden_layers` overridden resizes it)
            self.layer_types = ["full_attention"] * self.num_hidden_layers
        if self.kernels == "all":  # the one switch (= steel.kernels.resolve_kernels("all"))
            self.kernels = {k: fused for k, (_, fused) in KERNEL_CHOICES.items()}
        if self.kernels in (None, "none"):
            self.kernels = {}
        if not isinstance(self.kernels, dict):
            raise ValueError(f"kernels: want 'all', 'none' or a mapping of {list(KERNEL_NAMES)} (got {self.kernels!r})")
        self.kernels = dict(self.kernels)
        super().__post_init__(**kwargs)
        self.validate_steel()

    @property
    def expert_intermediate_size(self) -> int:
        return self.intermediate_size // self.mlp_div_ratio

    def validate_steel(self) -> None:
        """Raise ValueError("field: message") for an inconsistent config."""

        def need(cond: bool, name: str, msg: str) -> None:
            if not cond:
                raise ValueError(f"{name}: {msg} (got {getattr(self, name)!r})")

        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                     "num_key_value_heads", "head_dim", "mlp_div_ratio", "num_experts", "slots_per_expert",
                     "moe_chunk_size"):
            need(isinstance(getattr(self, name), int) and getattr(self, name) > 0, name, "must be a positive integer")
        need(self.ffn_type in FFN_TYPES, "ffn_type", f"must be one of {list(FFN_TYPES)}")
        need(self.expert_type in EXPERT_TYPES, "expert_type", f"must be one of {list(EXPERT_TYPES)}")
        need(self.num_attention_heads % self.num_key_value_heads == 0, "num_key_value_heads",
             "must divide num_attention_heads")
        need(self.intermediate_size // self.mlp_div_ratio > 0, "mlp_div_ratio", "leaves no SENet inner width")
        need(self.rms_norm_eps > 0, "rms_norm_eps", "must be > 0")
        # These failed only later, at build or in the forward, with errors that named no field:
        need(self.head_dim % 2 == 0, "head_dim", "must be even (RoPE rotates pairs of dimensions)")
        need(self.max_position_embeddings > 0, "max_position_embeddings", "must be > 0")
        need(self.initializer_range >= 0, "initializer_range", "must be >= 0")
        need(0 <= self.attention_dropout < 1, "attention_dropout", "must be in [0, 1)")
        from transformers.activations import ACT2FN
        from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

        need(self.hidden_act in ACT2FN, "hidden_act", f"must be one of transformers' activations {sorted(ACT2FN)}")
        rope = self.rope_parameters or {}
        need(rope.get("rope_theta", 1.0) > 0, "rope_parameters", "rope_theta must be > 0")
        # NOTE: the forward-time updates of dynamic NTK and longrope (its switch to `long_factor` past
        # original_max_position_embeddings) are transformers' own `dynamic_rope_update`, as in Qwen2.
        rope_types = ["default", *sorted(ROPE_INIT_FUNCTIONS)]
        need(rope.get("rope_type", "default") in rope_types, "rope_parameters", f"rope_type must be one of {rope_types}")
        try:  # the checks stock (@strict) configs run: a missing `factor` was a bare KeyError at build
            self.validate_rope()
        except (KeyError, ValueError, TypeError) as e:
            raise ValueError(f"rope_parameters: {e.args[0] if e.args else e} (got {self.rope_parameters!r})") from None
        need(self.layer_types is None or len(self.layer_types) == self.num_hidden_layers, "layer_types",
             f"needs one entry per layer ({self.num_hidden_layers})")
        need(all(t == "full_attention" for t in self.layer_types or ()), "layer_types",
             "only full_attention is implemented")
        need(isinstance(self.kernels, dict) and set(self.kernels) <= set(KERNEL_NAMES), "kernels",
             f"keys must be among {list(KERNEL_NAMES)}")
        for op, value in self.kernels.items():  # any other value turned the fused kernel on unsaid
            need(value in KERNEL_CHOICES[op], "kernels", f"{op} must be one of {KERNEL_CHOICES[op]}")
        # nn.Embedding takes -1 as its last row: that token's embedding was zeroed and never trained
        need(self.pad_token_id is None or (isinstance(self.pad_token_id, int) and 0 <= self.pad_token_id < self.vocab_size),
             "pad_token_id", f"must be null or a token id in [0, vocab_size {self.vocab_size})")
        if self.document_mask:
            need(self.eos_token_id is not None, "eos_token_id", "document_mask needs an eos_token_id")
            eos = self.eos_token_id if isinstance(self.eos_token_id, list) else [self.eos_token_id]
            need(all(isinstance(e, int) and 0 <= e < self.vocab_size for e in eos), "eos_token_id",
                 f"must be token ids in [0, vocab_size {self.vocab_size})")


__all__ = ["SteelConfig", "FFN_TYPES", "EXPERT_TYPES", "LEAKING_FFN_TYPES", "KERNEL_CHOICES", "KERNEL_NAMES"]
