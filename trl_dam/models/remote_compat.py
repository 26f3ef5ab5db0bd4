"""Load-time fixes that let the LLaDA and Dream hub checkpoints' own modeling code run on transformers 5.x.

The official checkpoints (`GSAI-ML/LLaDA-8B-*`, `Dream-org/Dream-v0-*-7B`) ship modeling code written for
transformers 4.4x. transformers 5 changed a few contracts that code relies on; each change gets one named
[`RemoteCodeFix`] here. [`apply_remote_code_fixes`] runs on the classes that `trust_remote_code=True` just imported
(never on transformers' own classes), applies only the fixes whose `needed` check finds the old behaviour, and
returns (and logs) their names. The fixes patch the dynamically imported classes / modules in place, so
`save_pretrained` still copies the checkpoint's own files and a reload applies the same fixes again.

Why a compatibility layer and not a `transformers<5` bound: TRL 1.x (which the trainers build on) requires
transformers 5, so a bound would drop TRL 1.x; the breakages are few and local.
"""

from __future__ import annotations

import functools
import inspect
import io
import sys
import textwrap
import tokenize
from collections.abc import Callable
from dataclasses import dataclass
from token import NAME

import torch
from transformers.utils import logging

logger = logging.get_logger(__name__)

#: Attribute set on a patched class / module: the names of the fixes applied to it (makes every fix idempotent).
APPLIED_ATTR = "_trl_dam_remote_fixes"


@dataclass(frozen=True)
class RemoteCodeFix:
    """One compatibility fix for remote code.

    Attributes:
        name: short identifier, logged when the fix is applied.
        target: "config" (applies to the remote config class) or "model" (to the remote model class).
        needed: `needed(cls) -> bool`, True when `cls` (or its module) shows the behaviour transformers 5 breaks on.
        apply: `apply(cls)` patches the class (or its module) in place.
        description: which checkpoint code and which transformers change it addresses.
    """

    name: str
    target: str
    needed: Callable[[type], bool]
    apply: Callable[[type], None]
    description: str


def _own_function(cls: type, name: str):
    """The `name` attribute `cls` resolves to, unless it comes from a transformers or torch class (then None)."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return None if klass.__module__.startswith(("transformers.", "torch.")) else vars(klass)[name]
    return None


def _names_in_code(function) -> set[str] | None:
    """The identifiers `function`'s source uses (comments and strings excluded); None when the source is unknown."""
    try:
        source = textwrap.dedent(inspect.getsource(function))
        return {tok.string for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == NAME}
    except (OSError, TypeError, tokenize.TokenError, IndentationError):
        return None


def _init_calls_post_init(cls: type) -> bool:
    """Whether constructing `cls` reaches `self.post_init()`, read from the code of the `__init__`s that run: the
    first one in the MRO, then the next as long as each hands over with `super().__init__`."""
    for klass in cls.__mro__:
        if klass.__module__.startswith(("transformers.", "torch.")) or klass is object:
            return False
        init = vars(klass).get("__init__")
        if init is None:
            continue
        names = _names_in_code(init)
        if names is None or "post_init" in names:
            return True  # calls it, or cannot tell: leave the class alone
        if "super" not in names:
            return False
    return False


# --- fix: post_init ---------------------------------------------------------------------------------------------


def _needs_post_init(cls: type) -> bool:
    return "__init__" in vars(cls) and not _init_calls_post_init(cls)


def _call_post_init(cls: type) -> None:
    original = cls.__init__

    @functools.wraps(original)
    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if "all_tied_weights_keys" not in vars(self):
            self.post_init()

    cls.__init__ = __init__


POST_INIT = RemoteCodeFix(
    name="post_init",
    target="model",
    needed=_needs_post_init,
    apply=_call_post_init,
    description=(
        "LLaDA's `LLaDAModelLM.__init__` never calls `self.post_init()`. transformers 5 computes "
        "`all_tied_weights_keys` (and other loading metadata) there and reads it in `from_pretrained`, so loading "
        "raises AttributeError. The fix calls `post_init()` at the end of `__init__`."
    ),
)


# --- fix: _tied_weights_keys as a list --------------------------------------------------------------------------


def _needs_tied_keys_mapping(cls: type) -> bool:
    return isinstance(getattr(cls, "_tied_weights_keys", None), list | tuple)


def _tied_keys_as_mapping(cls: type) -> None:
    original = cls.post_init

    @functools.wraps(original)
    def post_init(self):
        keys = self._tied_weights_keys
        if isinstance(keys, list | tuple):
            # transformers 4.x's list named the output weights tied to the input embeddings.
            embeddings = self.get_input_embeddings()
            source = next(f"{name}.weight" for name, module in self.named_modules() if module is embeddings)
            self._tied_weights_keys = dict.fromkeys(keys, source)
        return original(self)

    cls.post_init = post_init


TIED_WEIGHTS_KEYS_MAPPING = RemoteCodeFix(
    name="tied_weights_keys_mapping",
    target="model",
    needed=_needs_tied_keys_mapping,
    apply=_tied_keys_as_mapping,
    description=(
        "Dream declares `_tied_weights_keys = ['lm_head.weight']` (transformers 4.x: a list of the weights tied to "
        "the input embeddings); transformers 5 expects a `{tied: source}` mapping and calls `.keys()` on it in "
        "`save_pretrained` (AttributeError). The fix turns the list into the mapping to the input embedding's weight "
        "before `post_init` reads it (the tie itself still follows `config.tie_word_embeddings`, false for Dream)."
    ),
)


# --- fix: tie_weights signature ---------------------------------------------------------------------------------


def _needs_tie_weights_kwargs(cls: type) -> bool:
    tie = _own_function(cls, "tie_weights")
    if tie is None:
        return False
    parameters = inspect.signature(tie).parameters
    return "recompute_mapping" not in parameters and not any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def _accept_tie_weights_kwargs(cls: type) -> None:
    original = _own_function(cls, "tie_weights")

    @functools.wraps(original)
    def tie_weights(self, missing_keys=None, recompute_mapping=True):
        # The checkpoint's own tying (LLaDA: share `wte` with `ff_out` when `weight_tying`) is all it needs.
        return original(self)

    cls.tie_weights = tie_weights


TIE_WEIGHTS_SIGNATURE = RemoteCodeFix(
    name="tie_weights_signature",
    target="model",
    needed=_needs_tie_weights_kwargs,
    apply=_accept_tie_weights_kwargs,
    description=(
        "LLaDA overrides `tie_weights(self)` without arguments; transformers 5 calls "
        "`tie_weights(missing_keys=..., recompute_mapping=False)` while initialising and loading (TypeError). "
        "The fix accepts and ignores those arguments and runs the checkpoint's own tying."
    ),
)


# --- fix: use_cache on the config -------------------------------------------------------------------------------


def _needs_use_cache(cls: type) -> bool:
    try:
        return not hasattr(cls(), "use_cache")
    except Exception:  # a config that cannot be built without arguments: nothing to probe
        return False


def _default_use_cache(cls: type) -> None:
    original = cls.__init__

    @functools.wraps(original)
    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if not hasattr(self, "use_cache"):
            # A masked diffusion LM has no KV cache to use; LLaDA's forward reads `config.use_cache` when not passed.
            self.use_cache = bool(kwargs.get("use_cache", False))

    cls.__init__ = __init__


USE_CACHE = RemoteCodeFix(
    name="use_cache",
    target="config",
    needed=_needs_use_cache,
    apply=_default_use_cache,
    description=(
        "LLaDA's `forward` and `prepare_inputs_for_generation` read `self.config.use_cache`; transformers 5's "
        "`PreTrainedConfig.__init__` drops the `use_cache` it is given, so LLaDA's config ends up without it "
        "(AttributeError at the first forward). The fix sets it (False unless given) after the config's `__init__`."
    ),
)


# --- fix: the "default" RoPE initialiser ------------------------------------------------------------------------


def default_rope_parameters(config, device=None, seq_len=None, **kwargs) -> tuple[torch.Tensor, float]:
    """Plain RoPE, as transformers 4.x's `ROPE_INIT_FUNCTIONS["default"]` computed it:

    `inv_freq[j] = 1 / theta ** (2j / d)` for `j < d / 2`, with `d = head_dim * partial_rotary_factor` and `theta` the
    config's `rope_theta` (or `rope_parameters["rope_theta"]`); the attention scaling factor is 1.
    """
    theta = getattr(config, "rope_theta", None)
    if theta is None:
        theta = (getattr(config, "rope_parameters", None) or {}).get("rope_theta")
    if theta is None:
        raise ValueError(f"{type(config).__name__} has neither `rope_theta` nor `rope_parameters['rope_theta']`.")
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    dim = int(head_dim * getattr(config, "partial_rotary_factor", 1.0))
    exponents = torch.arange(0, dim, 2, dtype=torch.int64).to(device=device, dtype=torch.float) / dim
    return 1.0 / (float(theta) ** exponents), 1.0


def _module_of(cls: type):
    return sys.modules.get(cls.__module__)


def _needs_default_rope(cls: type) -> bool:
    table = getattr(_module_of(cls), "ROPE_INIT_FUNCTIONS", None)
    return isinstance(table, dict) and "default" not in table


def _add_default_rope(cls: type) -> None:
    module = _module_of(cls)
    # A copy for this module only: transformers' own table stays as it is.
    module.ROPE_INIT_FUNCTIONS = {**module.ROPE_INIT_FUNCTIONS, "default": default_rope_parameters}


DEFAULT_ROPE = RemoteCodeFix(
    name="default_rope",
    target="model",
    needed=_needs_default_rope,
    apply=_add_default_rope,
    description=(
        "Dream's rotary embedding looks up `ROPE_INIT_FUNCTIONS[rope_type]` with `rope_type='default'` when "
        "`rope_scaling` is null; transformers 5 removed the 'default' entry (each model computes plain RoPE itself), "
        "so building the model raises KeyError. The fix gives the modeling module its own table with a 'default' "
        "entry computing transformers 4.x's plain RoPE ([`default_rope_parameters`])."
    ),
)

# --- fix: GenerationConfig.validate signature -------------------------------------------------------------------


def _old_validate_configs(cls: type) -> list[type]:
    """Remote `GenerationConfig` subclasses visible from `cls`'s module whose `validate` takes no
    `user_set_attributes` (nor `**kwargs`)."""
    from transformers import GenerationConfig

    found = []
    for value in vars(_module_of(cls) or object).values():
        if not (isinstance(value, type) and issubclass(value, GenerationConfig) and is_remote_class(value)):
            continue
        validate = _own_function(value, "validate")
        if validate is None:
            continue
        parameters = inspect.signature(validate).parameters
        if "user_set_attributes" not in parameters and not any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
        ):
            found.append(value)
    return found


def _accept_validate_kwargs(cls: type) -> None:
    for config_class in _old_validate_configs(cls):
        original = _own_function(config_class, "validate")
        accepted = set(inspect.signature(original).parameters) - {"self"}

        def validate(self, *args, _original=original, _accepted=accepted, **kwargs):
            return _original(self, *args, **{k: v for k, v in kwargs.items() if k in _accepted})

        config_class.validate = functools.wraps(original)(validate)


GENERATION_CONFIG_VALIDATE = RemoteCodeFix(
    name="generation_config_validate",
    target="model",
    needed=lambda cls: bool(_old_validate_configs(cls)),
    apply=_accept_validate_kwargs,
    description=(
        "Dream's `DreamGenerationConfig.validate(self, is_init=False)` (generation_utils.py) predates transformers 5's "
        "`GenerationConfig.update`, which calls `validate(user_set_attributes=...)`; Dream's `from_pretrained` reads "
        "its generation config through it (TypeError). The fix drops the keywords the old `validate` does not take."
    ),
)

# --- fix: rotary buffers after meta-device loading --------------------------------------------------------------


def _rotary_classes(cls: type) -> list[type]:
    module = _module_of(cls)
    return [
        value
        for value in vars(module or object).values()
        if isinstance(value, type) and "RotaryEmbedding" in value.__name__ and is_remote_class(value)
    ]


def _needs_rotary_init(cls: type) -> bool:
    return _own_function(cls, "_init_weights") is not None and bool(_rotary_classes(cls))


def recompute_rotary_buffers(module) -> bool:
    """Refill `module.inv_freq` (and `original_inv_freq`) from the module's own `rope_init_fn`; False if the module is
    not a rotary embedding of that shape (`inv_freq` buffer plus `rope_init_fn`)."""
    inv_freq = getattr(module, "inv_freq", None)
    rope_init_fn = getattr(module, "rope_init_fn", None)
    if not isinstance(inv_freq, torch.Tensor) or not callable(rope_init_fn) or inv_freq.is_meta:
        return False
    value, scaling = rope_init_fn(module.config, inv_freq.device, **getattr(module, "rope_kwargs", {}))
    with torch.no_grad():
        inv_freq.copy_(value.to(inv_freq.dtype))
    # Dream keeps `original_inv_freq` as a plain attribute aliasing the buffer built on the meta device.
    original = getattr(module, "original_inv_freq", None)
    if isinstance(original, torch.Tensor) and original is not inv_freq:
        module.original_inv_freq = inv_freq.clone()
    module.attention_scaling = scaling
    return True


def _init_rotary_buffers(cls: type) -> None:
    original = cls.from_pretrained.__func__

    @functools.wraps(original)
    def from_pretrained(klass, *args, **kwargs):
        model = original(klass, *args, **kwargs)
        for module in model.modules():
            recompute_rotary_buffers(module)
        return model

    cls.from_pretrained = classmethod(from_pretrained)


ROTARY_BUFFERS = RemoteCodeFix(
    name="rotary_buffers",
    target="model",
    needed=_needs_rotary_init,
    apply=_init_rotary_buffers,
    description=(
        "Dream's rotary embeddings keep `inv_freq` in a non-persistent buffer computed in `__init__`, and "
        "`DreamPreTrainedModel._init_weights` only initialises linear and embedding layers. transformers 5 builds "
        "the model on the meta device in `from_pretrained` and gives non-checkpoint buffers uninitialised storage, "
        "which only its own `_init_weights` default refills for rotary modules; Dream's `inv_freq` stays garbage and "
        "the logits are wrong without any error. The fix recomputes the buffers with each rotary module's own "
        "`rope_init_fn` at the end of `from_pretrained`."
    ),
)

#: Every fix, in the order they are applied.
REMOTE_CODE_FIXES: tuple[RemoteCodeFix, ...] = (
    USE_CACHE,
    POST_INIT,
    TIE_WEIGHTS_SIGNATURE,
    TIED_WEIGHTS_KEYS_MAPPING,
    DEFAULT_ROPE,
    ROTARY_BUFFERS,
    GENERATION_CONFIG_VALIDATE,
)


def is_remote_class(cls: type) -> bool:
    """Whether `cls` was imported from a checkpoint's own code (`trust_remote_code`), not from an installed package."""
    return cls.__module__.split(".")[0] == "transformers_modules"


def apply_remote_code_fixes(cls: type, target: str, source: str = "") -> list[str]:
    """Apply the fixes for `target` ("config" or "model") that `cls` needs; return the names applied now.

    Classes that are not remote code are left alone. A fix already applied to the class is not applied twice.
    """
    if target not in ("config", "model"):
        raise ValueError(f"target must be 'config' or 'model', got {target!r}.")
    if not is_remote_class(cls):
        return []
    done = vars(cls).get(APPLIED_ATTR, ())
    applied = []
    for fix in REMOTE_CODE_FIXES:
        if fix.target != target or fix.name in done or not fix.needed(cls):
            continue
        fix.apply(cls)
        applied.append(fix.name)
    if applied:
        setattr(cls, APPLIED_ATTR, (*done, *applied))
        logger.warning(
            f"{source or cls.__name__}: applied remote-code compatibility fixes {applied} to {cls.__module__}."
            f"{cls.__name__} (see trl_dam.models.remote_compat)."
        )
    return applied
