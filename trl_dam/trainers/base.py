"""The base every masked-diffusion RL trainer of `trl_dam` stands on (DAM and diffu-GRPO).

It owns what the methods share, so no trainer carries its own copy. Each concern lives in a mixin named for it:

| concern | module |
| --- | --- |
| model, tokenizer, PEFT, reference | `model_setup` (`ModelSetupMixin`) |
| prompts, canvas, sampling with the policy | `generation` (`GenerationMixin`) |
| reward calling, weighting, errors | `reward_scoring` (`RewardScoringMixin`, async rewards in `reward_calls`) |
| metrics and the completions table | `metric_logging` (`MetricLoggingMixin`) |
| sampler state in checkpoints, resume | `checkpointing` (`CheckpointMixin`) |
| the model card | `model_card` |

This module assembles them with TRL's base trainer and holds construction, the dataloader geometry and evaluation.
A method subclass implements `_prepare_inputs` / `compute_loss` and the dataloader geometry `_generation_geometry`.
"""

from __future__ import annotations

import os

import torch
from datasets import Dataset, IterableDataset
from torch import nn
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerBase,
    ProcessorMixin,
    TrainerCallback,
    set_seed,
)
from transformers.utils import logging
from trl.trainer.utils import (
    RepeatSampler,
    disable_dropout_in_model,
    get_config_model_id,
    identity,
)

from trl_dam.models import (
    resolve_adapter,
)

from ._compat import BaseTrainer
from .base_config import DiffusionRLConfig
from .checkpointing import CheckpointMixin
from .generation import GenerationMixin
from .metric_logging import MetricLoggingMixin
from .model_card import build_model_card
from .model_setup import ModelSetupMixin
from .reward_scoring import RewardFunc, RewardScoringMixin

logger = logging.get_logger(__name__)


class DiffusionRLTrainer(
    ModelSetupMixin, GenerationMixin, RewardScoringMixin, MetricLoggingMixin, CheckpointMixin, BaseTrainer
):
    """Shared base of the masked-diffusion RL trainers (see the module docstring). Not used directly."""

    config_class = DiffusionRLConfig
    # `compute_loss` returns the mean over its micro-batch; the Trainer divides it by the accumulation steps.
    loss_is_scaled_for_ga = False
    _tag_names = ["trl", "trl-dam", "diffusion"]
    _name = "DiffusionRL"
    _template_file = "dam_model_card.md"  # in `trl_dam/templates/`, rendered by `create_model_card`

    def __init__(
        self,
        model: str | PreTrainedModel,
        reward_funcs: RewardFunc | list[RewardFunc],
        args: DiffusionRLConfig | None = None,
        train_dataset: Dataset | None = None,
        eval_dataset: Dataset | dict[str, Dataset] | None = None,
        processing_class: PreTrainedTokenizerBase | ProcessorMixin | None = None,
        reward_processing_classes: PreTrainedTokenizerBase | list[PreTrainedTokenizerBase | None] | None = None,
        callbacks: list[TrainerCallback] | None = None,
        optimizers: tuple[torch.optim.Optimizer | None, torch.optim.lr_scheduler.LambdaLR | None] = (None, None),
        peft_config=None,
        quantization_config=None,
    ):
        if args is None:
            name = model if isinstance(model, str) else get_config_model_id(model.config) or type(model).__name__
            args = self.config_class(f"{name.split('/')[-1]}-{self._name}")
        if isinstance(train_dataset, IterableDataset):
            raise NotImplementedError(
                f"{type(self).__name__} needs a map-style `datasets.Dataset` for training, not an IterableDataset: each "
                "generation round's prompts are served to several micro-steps by index (TRL's RepeatSampler), the "
                "round size is checked against the dataset's length, and a resumed run skips the batches it already "
                "trained on by index. Materialise the stream first, e.g. "
                "`Dataset.from_list(list(streamed.take(num_prompts)))`."
            )
        _check_datasets(type(self).__name__, train_dataset, eval_dataset)
        set_seed(args.seed)  # PEFT initialises adapters randomly: seed before wrapping
        model, model_id = self._load_model(model, args, quantization_config)
        processing_class = self._load_processing_class(processing_class, model, model_id, args)
        self.adapter = resolve_adapter(model, processing_class, args.mask_token_id)
        self.mask_token_id = self.adapter.mask_token_id
        self._turn_off_unsupported_checkpointing(model, args)
        model = self._wrap_peft(model, peft_config, args)
        self.ref_model = self._create_reference_model(model, args)
        if args.disable_dropout:
            for module in (model, self.ref_model):
                if module is not None:
                    disable_dropout_in_model(module)
        self._setup_rewards(reward_funcs, reward_processing_classes, args, train_dataset)
        self._setup_metric_logging(args)

        super().__init__(
            model=model,
            args=args,
            data_collator=identity,  # rows stay dicts: prompts are tokenised and sampled in `_prepare_inputs`
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            callbacks=callbacks,
            optimizers=optimizers,
        )
        self.ref_model = self._prepare_frozen(self.ref_model)
        self.reward_funcs = [self._prepare_frozen(f) if isinstance(f, nn.Module) else f for f in self.reward_funcs]
        # All sampling randomness (re-masking, unmasking orders, tokens) comes from this CPU generator, so runs are
        # reproducible on any device and the state can be checkpointed; ranks draw different streams.
        self.generator = torch.Generator().manual_seed(args.seed + self.accelerator.process_index)
        if hasattr(self.model, "add_model_tags"):
            self.model.add_model_tags(self._tag_names)
        round_size = self._generation_geometry()[0] * self.accelerator.num_processes
        if train_dataset is not None and len(train_dataset) < round_size:
            raise ValueError(
                f"The training dataset has {len(train_dataset)} prompts but a generation round takes {round_size} "
                f"({self._round_size_hint} x processes): lower it or add prompts."
            )

    # ------------------------------------------------------------------ model, tokenizer, reference

    # ------------------------------------------------------------------ data

    def _set_signature_columns_if_needed(self):
        # Rows are consumed whole by `_prepare_inputs`, not by the model's forward.
        if self._signature_columns is None:
            self._signature_columns = ["prompt"]

    #: The config fields that set a generation round's prompts per device, named when the dataset is too small.
    _round_size_hint = "the prompts per generation round"

    def _generation_geometry(self) -> tuple[int, int, int]:
        """``(prompts per device and batch, copies of each prompt in a batch, batches served per draw)``."""
        raise NotImplementedError

    def get_train_dataloader(self):
        # One dataloader batch is one generation round's prompts, served `repeat_count` times in a row (TRL's
        # RepeatSampler), so the Trainer's step/epoch bookkeeping and resume-time batch skipping stay correct.
        prompts, copies, _ = self._generation_geometry()
        return self._get_dataloader(
            dataset=self.train_dataset,
            description="Training",
            batch_size=prompts * copies,
            sampler_fn=self._get_train_sampler,
            is_training=True,
        )

    def _get_train_sampler(self, dataset: Dataset | None = None):
        prompts, copies, repeats = self._generation_geometry()
        return _EpochSeededRepeatSampler(
            data_source=dataset if dataset is not None else self.train_dataset,
            mini_repeat_count=copies,
            batch_size=prompts * self.accelerator.num_processes,
            repeat_count=repeats,
            shuffle=self.args.shuffle_dataset,
            seed=self.args.seed,
        )

    # ------------------------------------------------------------------ sampling

    # ------------------------------------------------------------------ rewards

    # ------------------------------------------------------------------ metrics

    # ------------------------------------------------------------------ evaluation

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys: list[str] | None = None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.mean().detach(), None, None

    # ------------------------------------------------------------------ checkpoints

    # ------------------------------------------------------------------ hub

    def create_model_card(
        self, model_name: str | None = None, dataset_name: str | None = None, tags: str | list[str] | None = None
    ) -> None:
        """Write `README.md` in the output folder: TRL's card with a quick start that can run a diffusion LM.

        Args:
            model_name: the card's title (the output folder's name by default).
            dataset_name: hub id or local path of the training data.
            tags: extra tags, besides the trainer's `_tag_names`.
        """
        if not self.is_world_process_zero():
            return
        card = build_model_card(self, model_name=model_name, dataset_name=dataset_name, tags=tags)
        os.makedirs(self.args.output_dir, exist_ok=True)
        card.save(os.path.join(self.args.output_dir, "README.md"))


class _EpochSeededRepeatSampler(RepeatSampler):
    """TRL's `RepeatSampler` with its shuffle re-seeded every epoch (``seed + epoch``).

    TRL's sampler draws each epoch's permutation from one generator that is never re-seeded, so a run resumed in a
    later epoch (whose earlier epochs are not replayed) would see another prompt order than the uninterrupted run.
    The Trainer calls `set_epoch` (through accelerate's dataloader) before iterating each epoch.
    """

    def set_epoch(self, epoch: int) -> None:
        if self.shuffle:
            self.generator.manual_seed((self.seed or 0) + epoch)


def _check_datasets(trainer: str, train_dataset, eval_dataset) -> None:
    """Fail at construction, naming the dataset, when no data is given or a dataset has no ``prompt`` column."""
    if train_dataset is None and eval_dataset is None:
        raise ValueError(
            f"{trainer} needs a `train_dataset` (a `datasets.Dataset` with a 'prompt' column), or an `eval_dataset` "
            "to evaluate only; both are None."
        )
    named = {"train_dataset": train_dataset}
    if isinstance(eval_dataset, dict):
        named |= {f"eval_dataset[{key!r}]": dataset for key, dataset in eval_dataset.items()}
    else:
        named["eval_dataset"] = eval_dataset
    for name, dataset in named.items():
        columns = getattr(dataset, "column_names", None)
        if columns is not None and "prompt" not in columns:
            raise ValueError(
                f"`{name}` has no 'prompt' column (its columns: {columns}). Rename the column that holds the prompts, "
                "e.g. `dataset.rename_column('question', 'prompt')`."
            )
