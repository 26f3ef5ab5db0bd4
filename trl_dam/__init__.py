"""trl_dam: Discrete Adjoint Matching for reward fine-tuning of masked diffusion language models."""

__version__ = "0.1.0.dev0"

_LAZY = {
    "DAMConfig": "trl_dam.trainers",
    "DAMTrainer": "trl_dam.trainers",
    "DiffuGRPOConfig": "trl_dam.trainers",
    "DiffuGRPOTrainer": "trl_dam.trainers",
    "DiffusionRLConfig": "trl_dam.trainers",
    "DiffusionRLTrainer": "trl_dam.trainers",
}

__all__ = list(_LAZY)


def __getattr__(name):
    # Lazy: `import trl_dam.core` must not pay for (or require) transformers/TRL.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trl_dam' has no attribute {name!r}")
