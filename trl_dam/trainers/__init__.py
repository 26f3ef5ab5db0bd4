"""TRL-style trainers for masked diffusion LMs: DAM and the shared base the baselines build on."""

from .base import DiffusionRLTrainer, RewardFunc, ScoredCompletions
from .base_config import DiffusionRLConfig
from .dam_config import DAMConfig
from .dam_trainer import DAMTrainer

__all__ = ["DAMConfig", "DAMTrainer", "DiffusionRLConfig", "DiffusionRLTrainer", "RewardFunc", "ScoredCompletions"]
