"""TRL-style trainers for masked diffusion LMs: DAM and the shared base the baselines build on."""

from .base import DiffusionRLTrainer
from .base_config import DiffusionRLConfig
from .dam_config import DAMConfig
from .dam_trainer import DAMTrainer
from .diffu_grpo_config import DiffuGRPOConfig
from .diffu_grpo_trainer import DiffuGRPOTrainer
from .generation import ScoredCompletions
from .reward_scoring import RewardFunc

__all__ = [
    "DAMConfig",
    "DAMTrainer",
    "DiffuGRPOConfig",
    "DiffuGRPOTrainer",
    "DiffusionRLConfig",
    "DiffusionRLTrainer",
    "RewardFunc",
    "ScoredCompletions",
]
