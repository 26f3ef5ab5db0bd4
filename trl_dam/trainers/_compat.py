"""The only place that imports private TRL internals, so a TRL release that moves them breaks one file.

`_BaseConfig` carries TRL's shared TrainingArguments overrides (logging every 10 steps, `%`-safe help strings, bf16
by default); `_BaseTrainer` carries the model-card machinery (`_tag_names`, `_name`, `_paper`, `create_model_card`).
Both fall back to the transformers classes they extend.
"""

from __future__ import annotations

from transformers import Trainer, TrainingArguments

try:
    from trl.trainer.base_config import _BaseConfig as BaseConfig
except ImportError:  # pragma: no cover - older/newer TRL layouts
    BaseConfig = TrainingArguments

try:
    from trl.trainer.base_trainer import _BaseTrainer as BaseTrainer
except ImportError:  # pragma: no cover
    BaseTrainer = Trainer

__all__ = ["BaseConfig", "BaseTrainer"]
