"""trl_dam: Discrete Adjoint Matching for reward fine-tuning of masked diffusion language models."""

__version__ = "0.1.0.dev0"
