"""The base every masked-diffusion RL trainer of `trl_dam` stands on (DAM now, diffu-GRPO next).

It owns what the methods share, so no trainer carries its own copy:

* model loading (a hub id / path through [`~trl_dam.models.load_diffusion_lm`], or a loaded model), the tokenizer,
  the denoiser adapter and the mask id;
* the reference model: with PEFT the same network, with its adapters disabled (adapters added from `peft_config`)
  or with a frozen copy of the adapter of a PeftModel passed in (TRL's `"ref"` adapter); otherwise a frozen copy;
* prompt tokenisation (standard and conversational prompts), the fixed-length completion canvas, and sampling it
  with the current model (eval mode, no grad, chunked), optionally recording reference log-probs along the path;
* reward calling with TRL's convention, weighting, `None` handling and clear errors;
* metric buffering and logging, and checkpointing of the sampler's random state (subclasses add their own state).
* the model card (`create_model_card`: TRL's style, rendered from `trl_dam/templates/`).

A method subclass implements `_prepare_inputs` / `compute_loss` and the dataloader geometry `_generation_geometry`.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import math
import os
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate.utils import gather, gather_object, is_peft_model
from datasets import Dataset, IterableDataset
from torch import Tensor, nn
from transformers import (
    AutoModelForSequenceClassification,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    ProcessorMixin,
    TrainerCallback,
    is_trackio_available,
    is_wandb_available,
    set_seed,
)
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import is_rich_available, logging
from trl.data_utils import apply_chat_template, is_conversational
from trl.models import unwrap_model_for_generation
from trl.trainer.utils import (
    RepeatSampler,
    disable_dropout_in_model,
    get_callable_name,
    get_config_model_id,
    identity,
    nanstd,
    print_prompt_completions_sample,
)

from trl_dam.core import Trajectory, sample_ctmc, sample_low_confidence
from trl_dam.core.shared_rows import GroupedRowsDenoiser
from trl_dam.models import (
    REFERENCE_ADAPTER,
    activation_checkpointing_paused,
    enable_own_activation_checkpointing,
    left_padding_mask,
    load_diffusion_lm,
    load_tokenizer,
    resolve_adapter,
    switch_off_activation_checkpointing,
    unwrap_model,
)

from ._compat import BaseTrainer
from .base_config import DiffusionRLConfig
from .checkpointing import TRAINER_STATE_FILE, is_complete_checkpoint, last_complete_checkpoint
from .model_card import build_model_card
from .reward_calls import RewardLoop, RewardTimeoutError

logger = logging.get_logger(__name__)

#: A reward: a model id, a sequence-classification model, or `f(prompts, completions, completion_ids, **kw)`.
RewardFunc = str | PreTrainedModel | Callable[..., list[float | None]]

#: Keyword arguments every reward function may receive besides the dataset columns.
REWARD_KWARGS = ("prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric")

#: Per-process file in a checkpoint folder with the sampler RNG and the method's own state (e.g. a replay buffer).
SAMPLER_STATE_FILE = "sampler_state_{rank}.pt"


@dataclass
class ScoredCompletions:
    """One completion per prompt, sampled by the current model and scored.

    Attributes:
        rows: the dataset rows (``"prompt"`` and the other columns) the completions answer.
        prompt_ids: unpadded prompt token ids, one CPU tensor per row.
        trajectory: the sampler's path from the fully masked canvas (``final[:, -N:]`` is the completion).
        rewards_per_func (`FloatTensor[n, num_funcs]`): raw rewards, NaN where a function returned ``None``.
        rewards (`FloatTensor[n]`): weighted total reward.
    """

    rows: list[dict[str, Any]]
    prompt_ids: list[Tensor]
    trajectory: Trajectory
    rewards_per_func: Tensor
    rewards: Tensor


class DiffusionRLTrainer(BaseTrainer):
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
        self._metrics: dict[str, defaultdict[str, list[float]]] = {
            "train": defaultdict(list),
            "eval": defaultdict(list),
        }
        self._mode = "train"
        # The completions table (`log_completions`): the rows of the latest optimizer step, as GRPO keeps the latest
        # generation batch; `_score` stages a batch and the method commits it with its own columns.
        rows_per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
        self._logs: dict[str, Any] = {
            "prompt": deque(maxlen=rows_per_step),
            "completion": deque(maxlen=rows_per_step),
            "rewards": defaultdict(lambda: deque(maxlen=rows_per_step)),
            "extra": defaultdict(lambda: deque(maxlen=rows_per_step)),
        }
        self._staged_completions: dict[str, Any] | None = None
        self._pending_extra_logs: defaultdict[str, list] = defaultdict(list)

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

    @staticmethod
    def _load_model(
        model: str | PreTrainedModel, args: DiffusionRLConfig, quantization_config=None
    ) -> tuple[PreTrainedModel, str]:
        """The model and its id. A string loads through `load_diffusion_lm` with `model_init_kwargs` and, as in TRL's
        GRPO, `quantization_config` (k-bit weights, placed on this process's device unless a `device_map` is given).
        """
        if not isinstance(model, str):
            if args.model_init_kwargs:
                logger.warning("`model_init_kwargs` is ignored because the model is already instantiated.")
            if quantization_config is not None:
                logger.warning("`quantization_config` is ignored because the model is already instantiated.")
            return model, get_config_model_id(model.config)
        kwargs = dict(args.model_init_kwargs or {})
        if quantization_config is not None:
            if "quantization_config" in kwargs:
                raise ValueError(
                    "`quantization_config` was given both to the trainer and in `args.model_init_kwargs`; set it once."
                )
            kwargs["quantization_config"] = quantization_config
        if kwargs.get("quantization_config") is not None:
            # k-bit weights cannot move after loading: put them on this process's device (what TRL's
            # `get_kbit_device_map` did; it is gone from TRL 1.16, whose script passes `{"": local_process_index}`).
            kwargs.setdefault("device_map", {"": args.device})
        if args.distributed_state.distributed_type in ("MULTI_GPU", "DEEPSPEED"):
            kwargs["device_map"] = None  # "auto" placement fights data parallelism
        kwargs["trust_remote_code"] = _trusts_remote_code(args)
        return load_diffusion_lm(model, **kwargs), model

    def _load_processing_class(self, processing_class, model: nn.Module, model_id: str, args: DiffusionRLConfig):
        if processing_class is None:
            revision = (args.model_init_kwargs or {}).get("revision")
            processing_class = load_tokenizer(
                model_id, trust_remote_code=_trusts_remote_code(args), revision=revision, padding_side="left"
            )
        tokenizer = processing_class.tokenizer if isinstance(processing_class, ProcessorMixin) else processing_class
        if not isinstance(tokenizer, PreTrainedTokenizerBase):
            raise TypeError("`processing_class` must be a tokenizer or a processor with a `.tokenizer`.")
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._tokenizer = tokenizer
        self.pad_token_id = tokenizer.pad_token_id
        # A completion ends at the first of the tokenizer's or the model's end-of-sequence ids (e.g. LLaDA's
        # <|eot_id|> then <|endoftext|> padding).
        model_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        model_eos = model_eos if isinstance(model_eos, list) else [model_eos]
        self.eos_token_ids = sorted({tokenizer.eos_token_id, *model_eos} - {None})
        return processing_class

    @staticmethod
    def _turn_off_unsupported_checkpointing(model: nn.Module, args: DiffusionRLConfig) -> None:
        """Models without transformers checkpointing use their own where they have one (LLaDA), else run without."""
        if not args.gradient_checkpointing or getattr(unwrap_model(model), "supports_gradient_checkpointing", False):
            return
        name = type(unwrap_model(model)).__name__
        if enable_own_activation_checkpointing(model, args.gradient_checkpointing_kwargs):
            logger.info(f"{name} checkpoints activations with its own `set_activation_checkpointing`.")
        else:
            logger.warning(f"{name} does not support gradient checkpointing; turning it off.")
        # The Trainer would call the transformers API, which such a model rejects.
        args.gradient_checkpointing = False
        if hasattr(args, "activation_checkpointing"):
            args.activation_checkpointing = False

    def _wrap_peft(self, model: nn.Module, peft_config, args: DiffusionRLConfig) -> nn.Module:
        quantized = getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False)
        if peft_config is None:
            if quantized and not is_peft_model(model):
                raise ValueError("A quantized model can only be trained through adapters: pass a `peft_config`.")
            if is_peft_model(model) and self._needs_reference(args):
                _add_reference_adapter(model)
        else:
            from peft import PeftConfig, get_peft_model

            if not isinstance(peft_config, PeftConfig):
                raise TypeError(f"`peft_config` must be a `peft.PeftConfig`, got {type(peft_config).__name__}.")
            if is_peft_model(model):
                raise ValueError("Pass either a PeftModel or a `peft_config`, not both (merge the adapter first).")
            plugin = args.deepspeed_plugin
            # As TRL's GRPO: under ZeRO-3, adapters of a non-quantized model keep the base dtype, because ZeRO-3
            # gathers a module's parameters into one buffer of the first one's dtype (fp32 LoRA next to bf16 weights
            # fails at the first step).
            zero3 = plugin is not None and plugin.zero_stage == 3
            model = get_peft_model(
                model, peft_config, **({"autocast_adapter_dtype": False} if zero3 and not quantized else {})
            )
            if args.gradient_checkpointing:
                model.enable_input_require_grads()  # frozen embeddings would otherwise cut the checkpointed graph
        if quantized:
            _cast_adapters_to_bf16(model)
        return model

    def _needs_reference(self, args: DiffusionRLConfig) -> bool:
        """Whether the method uses reference log-probs (a KL term); DAM always does (beta > 0)."""
        return getattr(args, "beta", 0.0) > 0

    def _create_reference_model(self, model: nn.Module, args: DiffusionRLConfig) -> nn.Module | None:
        # With PEFT the reference lives in the same network (see `_reference_denoiser`): no second copy of the weights.
        if is_peft_model(model) or not self._needs_reference(args):
            return None
        if any(hasattr(p, "ds_id") for p in model.parameters()):
            # Loaded sharded under ZeRO-3's `zero.Init`: a deep copy would hold empty shards; load the weights again.
            reference = self._load_model(get_config_model_id(model.config), args)[0].eval()
        else:
            reference = copy.deepcopy(model).eval()
            # The copy inherits the model's own checkpointing (LLaDA checkpoints even without gradients): useless here.
            switch_off_activation_checkpointing(reference)
        reference.requires_grad_(False)
        return reference

    def _prepare_frozen(self, module: nn.Module | None) -> nn.Module | None:
        if module is None:
            return None
        if self.is_deepspeed_enabled:
            from trl.models.utils import prepare_deepspeed

            return prepare_deepspeed(module, self.accelerator)
        return self.accelerator.prepare_model(module, evaluation_mode=True)

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

    def train(self, resume_from_checkpoint: str | bool | None = None, trial=None, **kwargs):
        """`Trainer.train`, with ``resume_from_checkpoint=True`` taking the newest *complete* checkpoint.

        A folder left incomplete by a run stopped while saving is skipped with a warning naming it (see
        [`~trl_dam.trainers.checkpointing.last_complete_checkpoint`]); a path to an incomplete folder is refused.
        """
        if self.train_dataset is None:
            raise ValueError(
                f"{type(self).__name__}.train() needs a `train_dataset` (a dataset with a 'prompt' column)."
            )
        if resume_from_checkpoint is True:
            resume_from_checkpoint = last_complete_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                raise ValueError(
                    f"resume_from_checkpoint=True, but {self.args.output_dir} holds no complete checkpoint folder."
                )
        elif isinstance(resume_from_checkpoint, str) and not is_complete_checkpoint(resume_from_checkpoint):
            raise ValueError(
                f"Cannot resume from {resume_from_checkpoint}: it has no readable {TRAINER_STATE_FILE}, so its save "
                "did not finish (or it is not a checkpoint folder). Pass an earlier checkpoint, or True for the "
                "newest complete one."
            )
        return super().train(resume_from_checkpoint=resume_from_checkpoint, trial=trial, **kwargs)

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

    def _tokenize_prompts(self, prompts: list) -> list[Tensor]:
        """Prompt token ids (chat template with generation prompt for conversational prompts), left-truncated."""
        if is_conversational({"prompt": prompts[0]}):
            ids = self.processing_class.apply_chat_template(
                conversation=prompts,
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
                **(self.args.chat_template_kwargs or {}),
            )["input_ids"]
        else:
            ids = self.processing_class(text=prompts)["input_ids"]
        keep = self.args.max_prompt_length
        return [torch.tensor(p[-keep:] if keep else p, dtype=torch.long) for p in ids]

    def _canvas(self, prompt_ids: list[Tensor]) -> Tensor:
        """``LongTensor[n, P + N]``: prompts left-padded to a common width ``P``, then N mask tokens."""
        width = max(len(p) for p in prompt_ids)
        x = torch.full((len(prompt_ids), width + self.args.max_completion_length), self.pad_token_id)
        x[:, width:] = self.mask_token_id
        for row, ids in enumerate(prompt_ids):
            x[row, width - len(ids) : width] = ids
        return x.to(self.accelerator.device)

    # ------------------------------------------------------------------ sampling

    def _denoiser(self, model: nn.Module, reference: bool = False) -> Callable[[Tensor], Tensor]:
        """``logits_fn(x)`` for the samplers, the left padding read off each ``x`` (see `left_padding_mask`); with
        ``reference`` a PEFT model runs as its reference (see `reference_adapter`)."""
        return self.adapter.bind_left_padded(model, self.pad_token_id, disable_adapter=reference)

    def _attention_mask(self, x: Tensor) -> Tensor | None:
        """Mask of the left padding of ``x``, ``None`` when unpadded (see `left_padding_mask`)."""
        return left_padding_mask(x, self.pad_token_id)

    def _reference_denoiser(self, model: nn.Module) -> Callable[[Tensor], Tensor] | None:
        """The fixed reference (never synced): under PEFT ``model`` with its ``"ref"`` adapter or with its adapters
        disabled (see `_denoiser`), else the frozen copy."""
        if is_peft_model(model):
            return self._denoiser(model, reference=True)
        return self._denoiser(self.ref_model) if self.ref_model is not None else None

    @contextmanager
    def _model_for_sampling(self):
        """The unwrapped model in eval mode (no dropout), with ZeRO-3 weights gathered once for the whole call.

        Under ZeRO-3 the frozen reference is gathered too: the samplers make a data-dependent number of denoiser calls
        (e.g. the CTMC runs as many steps as the most-masked row of *this* rank), so per-forward all-gathers would
        pair up differently on each rank and deadlock.

        Activation checkpointing is paused, not switched off and on again: TRL's unwrapping would re-enable it with
        default kwargs, dropping the user's `gradient_checkpointing_kwargs`.
        """
        zero3 = self.is_deepspeed_enabled and self.accelerator.state.deepspeed_plugin.zero_stage == 3
        if zero3 and not self.args.ds3_gather_for_generation:
            raise NotImplementedError(
                "ds3_gather_for_generation=False is not supported: the number of denoiser calls per sampling call "
                "differs across ranks, so sharded forwards would deadlock."
            )
        with (
            activation_checkpointing_paused(self.model),
            unwrap_model_for_generation(self.model_wrapped, self.accelerator) as model,
            unwrap_model_for_generation(self.ref_model, self.accelerator)
            if zero3 and self.ref_model is not None
            else contextlib.nullcontext(),
        ):
            was_training = model.training
            model.eval()
            try:
                yield model
            finally:
                model.train(was_training)

    def _sample(self, x: Tensor, with_reference: bool = False, group_size: int = 1) -> Trajectory:
        """Fill every mask of ``x`` with the current model, ``sampling_batch_size`` rows per sampler call.

        With ``with_reference`` the trajectory also records the reference log-probs of every step (one extra
        reference forward per step, in the same loop). ``group_size = K`` declares that ``x`` holds K consecutive
        copies of each state: calls on still-identical copies (the first step) then run once per group
        (:class:`~trl_dam.core.shared_rows.GroupedRowsDenoiser`; the saved rows are logged as
        `sampling/rows_saved`).
        """
        chunk = self.args.sampling_batch_size or len(x)
        if group_size > 1 and chunk > group_size:
            chunk -= chunk % group_size  # whole groups per sampler call (never more rows than asked for)
        with self._model_for_sampling() as model:
            policy = GroupedRowsDenoiser(self._denoiser(model), group_size)
            reference = self._reference_denoiser(model) if with_reference else None
            if with_reference and reference is None:
                raise RuntimeError("reference log-probs were requested but the trainer has no reference model")
            if reference is not None:
                reference = GroupedRowsDenoiser(reference, group_size)
            pieces = [self._run_sampler(policy, x[i : i + chunk], reference) for i in range(0, len(x), chunk)]
        if group_size > 1:
            self._log_value("sampling/rows_saved", policy.rows_saved + (reference.rows_saved if reference else 0))
        return _cat_trajectories(pieces)

    def _run_sampler(self, policy, x: Tensor, reference) -> Trajectory:
        args = self.args
        if args.sampler == "ctmc":
            return sample_ctmc(
                policy,
                x,
                self.mask_token_id,
                tokens_per_step=args.tokens_per_step,
                temperature=args.temperature,
                reference_logits_fn=reference,
                generator=self.generator,
            )
        return sample_low_confidence(
            policy,
            x,
            self.mask_token_id,
            steps=args.num_diffusion_steps,
            block_length=args.block_length or args.max_completion_length,
            completion_start=x.shape[1] - args.max_completion_length,
            temperature=args.temperature,
            reference_logits_fn=reference,
            generator=self.generator,
        )

    def _generate_and_score(self, rows: list[dict[str, Any]]) -> ScoredCompletions:
        """Sample one completion per row with the current model, score it, and log reward and length metrics."""
        prompt_ids = self._tokenize_prompts([row["prompt"] for row in rows])
        trajectory = self._sample(self._canvas(prompt_ids))
        rewards_per_func, rewards, lengths = self._score(rows, trajectory.final[:, -self.args.max_completion_length :])
        self._log_rewards(rewards_per_func, rewards)
        self._log_mean("completions/mean_length", lengths.float())
        return ScoredCompletions(rows, prompt_ids, trajectory, rewards_per_func, rewards)

    # ------------------------------------------------------------------ rewards

    def _setup_rewards(self, reward_funcs, reward_processing_classes, args, train_dataset) -> None:
        funcs = list(reward_funcs) if isinstance(reward_funcs, list | tuple) else [reward_funcs]
        if not funcs:
            raise ValueError("`reward_funcs` must contain at least one reward function.")
        for i, func in enumerate(funcs):
            if isinstance(func, str):
                funcs[i] = AutoModelForSequenceClassification.from_pretrained(
                    func, num_labels=1, trust_remote_code=args.trust_remote_code is True
                )
        self.reward_funcs = funcs
        self._reward_loop = RewardLoop(timeout=args.reward_timeout)
        self.reward_func_names = [
            (get_config_model_id(f.config).split("/")[-1] or type(f).__name__)
            if isinstance(f, nn.Module)
            else get_callable_name(f)
            for f in funcs
        ]
        columns = set(train_dataset.column_names) if isinstance(train_dataset, Dataset) else None
        for func, name in zip(funcs, self.reward_func_names):
            _check_reward_signature(func, name, columns)
        weights = args.reward_weights
        if weights is not None and len(weights) != len(funcs):
            raise ValueError(
                f"`reward_weights` has {len(weights)} entries but there are {len(funcs)} reward functions "
                f"({self.reward_func_names})."
            )
        self.reward_weights = torch.tensor(weights if weights is not None else [1.0] * len(funcs))
        classes = reward_processing_classes
        classes = list(classes) if isinstance(classes, list | tuple) else [classes] * len(funcs)
        if len(classes) != len(funcs):
            raise ValueError(f"Got {len(classes)} reward processing classes for {len(funcs)} reward functions.")
        for i, (func, proc) in enumerate(zip(funcs, classes)):
            if isinstance(func, PreTrainedModel):
                # A reward model built in code arrives in training mode; scoring must not use dropout.
                func.eval().requires_grad_(False)
                proc = proc or load_tokenizer(
                    get_config_model_id(func.config), trust_remote_code=args.trust_remote_code
                )
                if proc.pad_token_id is None:
                    proc.pad_token = proc.eos_token
                func.config.pad_token_id = proc.pad_token_id  # the model scores the last non-pad token
                classes[i] = proc
        self.reward_processing_classes = classes

    def _score(self, rows: list[dict[str, Any]], completion_ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Decode ``completion_ids [n, N]`` and score them against ``rows``.

        Returns ``(rewards_per_func [n, F], rewards [n], lengths [n])``; lengths count tokens up to and including the
        first end-of-sequence token.
        """
        prompts = [row["prompt"] for row in rows]
        completions, ids_list = self._decode(prompts, completion_ids)
        self._pending_extra_logs.clear()
        rewards_per_func = self._calculate_rewards(rows, prompts, completions, ids_list)
        rewards = self._total_rewards(rewards_per_func, prompts, completions)
        lengths = torch.tensor([len(ids) for ids in ids_list], device=completion_ids.device)
        self._staged_completions = {
            "prompt": prompts,
            "completion": completions,
            "rewards": rewards_per_func.tolist(),
            "extra": dict(self._pending_extra_logs),
        }
        return rewards_per_func, rewards, lengths

    def _decode(self, prompts: list, completion_ids: Tensor) -> tuple[list, list[list[int]]]:
        """Cut each completion after its first end-of-sequence token and decode it (TRL's completion format)."""
        is_eos = torch.isin(completion_ids, torch.tensor(self.eos_token_ids, device=completion_ids.device))
        has_eos = is_eos.any(1)
        lengths = torch.where(has_eos, is_eos.int().argmax(1) + 1, completion_ids.shape[1])
        ids_list = [row[:n].tolist() for row, n in zip(completion_ids, lengths.tolist())]
        texts = self._tokenizer.batch_decode(ids_list, skip_special_tokens=True)
        if is_conversational({"prompt": prompts[0]}):
            return [[{"role": "assistant", "content": text}] for text in texts], ids_list
        return texts, ids_list

    def _calculate_rewards(self, rows, prompts, completions, completion_ids) -> Tensor:
        """``FloatTensor[n, F]`` of raw rewards (NaN where a function returned ``None``), TRL's calling convention."""
        columns = {key: [row[key] for row in rows] for key in rows[0] if key not in ("prompt", "completion")}
        kwargs = {
            **columns,
            "trainer_state": self.state,
            "log_extra": self._log_completion_extra,
            "log_metric": self._log_reward_metric,
        }
        values_per_func, awaiting = [], []
        for i, (func, proc, name) in enumerate(
            zip(self.reward_funcs, self.reward_processing_classes, self.reward_func_names)
        ):
            try:
                if isinstance(func, nn.Module):
                    values = self._reward_model_scores(func, proc, prompts, completions)
                else:
                    values = func(prompts=prompts, completions=completions, completion_ids=completion_ids, **kwargs)
            except Exception as err:
                values = err
            if inspect.isawaitable(values):
                awaiting.append((i, name, values))  # started together below, so async rewards overlap
            values_per_func.append(values)
        if awaiting:
            results = self._reward_loop.gather([(name, awaitable) for _, name, awaitable in awaiting])
            for (i, _, _), values in zip(awaiting, results):
                values_per_func[i] = values
        out = torch.empty(len(prompts), len(self.reward_funcs))
        for i, (values, name) in enumerate(zip(values_per_func, self.reward_func_names)):
            if isinstance(values, RewardTimeoutError):
                raise values
            if isinstance(values, Exception):
                raise RuntimeError(
                    f"Reward function '{name}' raised {type(values).__name__} while scoring {len(prompts)} "
                    f"completions (step {self.state.global_step}): {values}"
                ) from values
            out[:, i] = torch.tensor(_validate_rewards(values, name, prompts, completions))
        return out.to(self.accelerator.device)

    def _reward_model_scores(self, model: nn.Module, proc, prompts, completions) -> list[float]:
        if is_conversational({"prompt": prompts[0]}):
            texts = [apply_chat_template({"messages": p + c}, proc)["text"] for p, c in zip(prompts, completions)]
        else:
            texts = [p + c for p, c in zip(prompts, completions)]
        inputs = proc(text=texts, return_tensors="pt", padding=True, padding_side="right", add_special_tokens=False)
        with torch.inference_mode():
            return model(**inputs.to(self.accelerator.device)).logits[:, 0].float().tolist()

    def _total_rewards(self, rewards_per_func: Tensor, prompts: list, completions: list) -> Tensor:
        r"""Weighted total :math:`r = \sum_f w_f r_f` over the functions that returned a value (``None`` skipped).

        A completion no function scored has no reward at all; rather than invent one, this raises, naming it.
        """
        unscored = torch.isnan(rewards_per_func).all(1)
        if unscored.any():
            j = int(unscored.nonzero()[0])
            raise ValueError(
                f"Every reward function ({', '.join(self.reward_func_names)}) returned None for completion {j} "
                f"(prompt {prompts[j]!r}, completion {completions[j]!r}), so its total reward is NaN. Return a "
                "number from at least one function for every completion."
            )
        # The functions' values were checked finite as Python floats; what is infinite now overflowed float32.
        overflow = torch.isinf(rewards_per_func)
        if overflow.any():
            j, i = overflow.nonzero()[0].tolist()
            raise ValueError(
                f"Step {self.state.global_step}: reward function '{self.reward_func_names[i]}' returned a value beyond "
                f"float32's range (|r| > {torch.finfo(torch.float32).max:.3g}) for completion {j} (prompt "
                f"{prompts[j]!r}). Rescale the reward."
            )
        total = self._weighted_total(rewards_per_func)
        if not torch.isfinite(total).all():
            j = int((~torch.isfinite(total)).nonzero()[0])
            raise ValueError(
                f"Step {self.state.global_step}: the weighted total reward of completion {j} overflows float32 "
                f"(rewards {rewards_per_func[j].tolist()}, reward_weights {self.reward_weights.tolist()})."
            )
        return total

    def _weighted_total(self, rewards_per_func: Tensor) -> Tensor:
        """``FloatTensor[n]``: weighted sum over reward functions, skipping NaN (``None``) entries."""
        return torch.nansum(rewards_per_func * self.reward_weights.to(rewards_per_func.device), dim=1)

    # ------------------------------------------------------------------ metrics

    def _log_mean(self, name: str, values: Tensor) -> None:
        """Record the mean of ``values`` over all processes under ``name`` for the current mode."""
        values = gather(values.detach().float().reshape(-1).to(self.accelerator.device))
        self._metrics[self._mode][name].append(float(values.nanmean()))

    def _log_value(self, name: str, value: float) -> None:
        self._metrics[self._mode][name].append(float(value))

    def _log_reward_metric(self, name: str, value: float) -> None:
        """`log_metric` for reward functions: a scalar averaged over the logging window."""
        self._log_value(name, value)

    def _log_completion_extra(self, column: str, values: list) -> None:
        """`log_extra` for reward functions: a column of the completions table, one value per completion."""
        self._pending_extra_logs[column].extend(values)

    def _commit_completions(self, **columns: list) -> None:
        """Add the batch last scored by `_score` to the completions table, with the method's own ``columns`` (one
        value per completion, e.g. DAM's rollout weights). A staged batch that is not committed (DAM's generation
        rounds) stays out of the table. Collective: every process calls it."""
        staged, self._staged_completions = self._staged_completions, None
        if not self.args.log_completions or staged is None:
            return
        self._logs["prompt"].extend(gather_object(staged["prompt"]))
        self._logs["completion"].extend(gather_object(staged["completion"]))
        for i, name in enumerate(self.reward_func_names):
            self._logs["rewards"][name].extend(gather_object([row[i] for row in staged["rewards"]]))
        extra = {**staged["extra"], **columns}
        # Sorted so that every process gathers the columns in the same order.
        for column in sorted(set(gather_object(list(extra)))):
            self._logs["extra"][column].extend(gather_object(list(extra.get(column, [None] * len(staged["prompt"])))))

    def _log_completions_table(self) -> None:
        """GRPO's completions table: printed with rich, saved as parquet, logged to wandb / trackio."""
        if not (self.args.log_completions and self.accelerator.is_main_process and self._logs["prompt"]):
            return
        import pandas as pd

        extra = {key: list(values) for key, values in self._logs["extra"].items()}
        advantages = extra.pop("advantage", None)
        rewards = {name: list(values) for name, values in self._logs["rewards"].items()}
        if is_rich_available():
            print_prompt_completions_sample(
                list(self._logs["prompt"]),
                list(self._logs["completion"]),
                rewards,
                advantages,
                self.state.global_step,
                self.args.num_completions_to_print,
                extra=extra,
            )
        table = {
            "step": [self.state.global_step] * len(self._logs["prompt"]),
            "prompt": list(self._logs["prompt"]),
            "completion": list(self._logs["completion"]),
            **rewards,
            **({"advantage": advantages} if advantages is not None else {}),
            **extra,
        }
        frame = pd.DataFrame(table)
        folder = os.path.join(self.args.output_dir, "completions")
        os.makedirs(folder, exist_ok=True)
        # Conversations (lists of messages) are stored as text so that any column type fits parquet.
        frame.astype({c: str for c in ("prompt", "completion")}).to_parquet(
            os.path.join(folder, f"completions_{self.state.global_step:05d}.parquet")
        )
        report_to = self.args.report_to or []
        if "wandb" in report_to and is_wandb_available():
            import wandb

            if wandb.run is not None:
                wandb.log({"completions": wandb.Table(dataframe=frame)})
        if "trackio" in report_to and is_trackio_available():
            import trackio

            trackio.log({"completions": trackio.Table(dataframe=frame)})

    def _log_rewards(self, rewards_per_func: Tensor, rewards: Tensor) -> None:
        """GRPO's reward metrics: ``reward``, ``reward_std``, ``rewards/<name>/mean``, ``rewards/<name>/std``."""
        per_func = gather(rewards_per_func)
        for i, name in enumerate(self.reward_func_names):
            column = per_func[:, i]
            self._log_value(f"rewards/{name}/mean", float(column.nanmean()))
            self._log_value(f"rewards/{name}/std", float(nanstd(column)))
        total = gather(rewards)
        self._log_value("reward", float(total.mean()))
        self._log_value("reward_std", float(total.std()) if total.numel() > 1 else 0.0)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if self.model.training else "eval"
        # NaN entries (e.g. a reward that was None for a whole batch) are skipped instead of poisoning the average.
        metrics = {}
        for key, values in self._metrics[mode].items():
            valid = [v for v in values if not math.isnan(v)]
            metrics[key] = sum(valid) / len(valid) if valid else None
        if mode == "eval":
            metrics = {f"eval_{key}": value for key, value in metrics.items()}
        logs.update(metrics)  # in place, as GRPO does, so `evaluate()` also returns them
        super().log(logs, start_time)
        self._metrics[mode].clear()
        self._log_completions_table()

    # ------------------------------------------------------------------ evaluation

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys: list[str] | None = None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.mean().detach(), None, None

    # ------------------------------------------------------------------ checkpoints

    def _sampler_state_dict(self) -> dict[str, Any]:
        """State restored on resume so the run continues exactly; subclasses extend it."""
        return {"generator": self.generator.get_state()}

    def _load_sampler_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])

    def _save_checkpoint(self, model, trial):
        # As TRL's trainers do, refresh the output folder's model card: `push_to_hub` checkpoint pushes upload it.
        self.create_model_card(model_name=(self.args.hub_model_id or Path(self.args.output_dir).name).split("/")[-1])
        if not self.args.save_only_model:
            # Written before the Trainer saves the checkpoint, because with `hub_strategy="checkpoint"` or
            # `"all_checkpoints"` it starts uploading the folder at the end of `super()._save_checkpoint`.
            folder = os.path.join(self._get_output_dir(trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
            os.makedirs(folder, exist_ok=True)
            state_file = os.path.join(folder, SAMPLER_STATE_FILE.format(rank=self.args.process_index))
            torch.save(self._sampler_state_dict(), state_file)
        super()._save_checkpoint(model, trial)

    def _load_rng_state(self, checkpoint: str | None) -> None:
        # The Trainer calls this once when it resumes, after skipping the batches already trained on.
        super()._load_rng_state(checkpoint)
        if checkpoint is None:
            return
        path = os.path.join(checkpoint, SAMPLER_STATE_FILE.format(rank=self.args.process_index))
        if not os.path.isfile(path):
            logger.warning(f"No {os.path.basename(path)} in {checkpoint}: the sampler state starts fresh.")
            return
        self._load_sampler_state_dict(torch.load(path, weights_only=True))

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


def _add_reference_adapter(model) -> None:
    r"""Freeze a copy of a PeftModel's active adapter as the ``"ref"`` adapter, as TRL's GRPO does.

    A PeftModel passed in (e.g. an SFT LoRA to continue from) *is* the model to start from, so the reference
    $p^{\mathrm{base}}$ of $p^* \propto p^{\mathrm{base}} e^{r/\beta}$ must be the base network with that adapter,
    not the bare base: disabling the adapters would silently change the target.
    """
    name = model.active_adapter
    model.add_adapter(REFERENCE_ADAPTER, model.peft_config[name])
    source, target = f".{name}.", f".{REFERENCE_ADAPTER}."
    with torch.no_grad():
        for param_name, param in model.named_parameters():
            if source in param_name:
                model.get_parameter(param_name.replace(source, target)).copy_(param)
    for param_name, param in model.named_parameters():
        if target in param_name:
            param.requires_grad_(False)


def _cast_adapters_to_bf16(model: nn.Module) -> None:
    """QLoRA's adapter dtype, as TRL's GRPO sets it: trainable adapter weights (and the frozen ``"ref"`` copy, so it
    stays equal to them) in bf16, except DoRA's magnitude vectors, whose small updates bf16 would round away."""
    for name, param in model.named_parameters():
        if (param.requires_grad or f".{REFERENCE_ADAPTER}." in name) and "lora_magnitude_vector" not in name:
            param.data = param.data.to(torch.bfloat16)


def _validate_rewards(values, name: str, prompts: list, completions: list) -> list[float]:
    """``None`` -> NaN (the function abstains); anything else must be a finite number, one per completion.

    Accepted, as TRL accepts them: any sequence of one value per completion (list, tuple, 1-D numpy array or tensor,
    any iterable but a mapping or a string), each a number `float()` reads (int, bool, numpy or 0-d torch scalar) or
    `None`. Anything else raises a TypeError naming the function.
    """
    if isinstance(values, Mapping | str | bytes) or not isinstance(values, Iterable):
        raise TypeError(
            f"Reward function '{name}' returned {_describe(values)}; it must return a list of {len(prompts)} rewards, "
            "one float (or None to abstain) per completion."
        )
    values = values.tolist() if isinstance(values, Tensor | np.ndarray) else list(values)
    if not isinstance(values, list):  # a 0-d tensor or array
        raise TypeError(f"Reward function '{name}' returned the scalar {values!r}; it must return one per completion.")
    if len(values) != len(prompts):
        raise ValueError(
            f"Reward function '{name}' returned {len(values)} rewards for {len(prompts)} completions; it must return "
            "one per completion."
        )
    out = []
    for j, value in enumerate(values):
        if value is None:
            out.append(math.nan)
            continue
        try:
            number = float(value)
        except (TypeError, ValueError) as err:
            raise ValueError(f"Reward function '{name}' returned {value!r} for completion {j}: not a number.") from err
        if not math.isfinite(number):
            raise ValueError(
                f"Reward function '{name}' returned {number} for completion {j} (prompt {prompts[j]!r}, completion "
                f"{completions[j]!r}). Rewards must be finite; return None to abstain on a completion."
            )
        out.append(number)
    return out


def _describe(values) -> str:
    if isinstance(values, Mapping):
        return f"a {type(values).__name__} (keys {list(values)[:4]!r}), not a list"
    return f"{type(values).__name__} {values!r}"[:200]


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


def _check_reward_signature(func, name: str, columns: set[str] | None) -> None:
    """Fail at construction, not at the first step, when a reward needs an argument nobody will pass."""
    if isinstance(func, nn.Module):
        return
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        raise ValueError(
            f"Reward function '{name}' must accept **kwargs: it is called with {list(REWARD_KWARGS)} and every "
            "dataset column as keyword arguments."
        )
    if columns is None:
        return
    available = set(REWARD_KWARGS) | (columns - {"prompt"})
    missing = [
        p.name
        for p in parameters
        if p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        and p.name not in available
    ]
    if missing:
        raise ValueError(
            f"Reward function '{name}' requires {missing}, which is neither a reward argument {list(REWARD_KWARGS)} "
            f"nor a dataset column {sorted(columns)}."
        )


def _cat_trajectories(pieces: list[Trajectory]) -> Trajectory:
    """Concatenate sampler chunks along the batch, padding steps / slots (``-1`` positions, zero log-probs)."""
    if len(pieces) == 1:
        return pieces[0]
    steps = max(p.positions.shape[1] for p in pieces)
    width = max(p.positions.shape[2] for p in pieces)

    def pad(t: Tensor | None, value) -> Tensor | None:
        if t is None:
            return None
        grow = [0, width - t.shape[2]] if t.dim() == 3 else []
        return torch.nn.functional.pad(t, [*grow, 0, steps - t.shape[1]], value=value)

    def cat(name: str, value=None) -> Tensor | None:
        tensors = [getattr(p, name) if value is None else pad(getattr(p, name), value) for p in pieces]
        return None if tensors[0] is None else torch.cat(tensors)

    return Trajectory(
        initial=cat("initial"),
        final=cat("final"),
        positions=cat("positions", -1),
        tokens=cat("tokens", -1),
        step_mask=cat("step_mask", False),
        logp_policy=cat("logp_policy", 0.0),
        logp_reference=cat("logp_reference", 0.0),
    )


def _trusts_remote_code(args: DiffusionRLConfig) -> bool:
    """One decision for the policy, its reference and its tokenizer: `model_init_kwargs["trust_remote_code"]` when
    given (as TRL lets it override), else `args.trust_remote_code`; only `True` trusts."""
    return (args.model_init_kwargs or {}).get("trust_remote_code", args.trust_remote_code) is True
