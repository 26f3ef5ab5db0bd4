"""Model cards in TRL's style for the masked-diffusion trainers, from `trl_dam/templates/`.

TRL's `lm_model_card.md` starts with a `pipeline("text-generation")` quick start, which cannot run a masked
diffusion LM, and TRL's `generate_model_card` only reads templates shipped inside `trl`. This module renders the
package's own template: base model, dataset, a quick start that samples with `trl_dam`'s decoder, the training
hyperparameters and metrics, framework versions (trl_dam and TRL included) and the method's citation.
"""

from __future__ import annotations

import math
import os
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from accelerate.utils import is_peft_model
from huggingface_hub import ModelCard, ModelCardData
from transformers import Trainer, is_wandb_available
from trl.trainer.utils import get_comet_experiment_url, get_config_model_id, get_trackio_space_url

#: Training arguments listed on the card, when the trainer's config has them.
HYPERPARAMETERS = (
    "learning_rate",
    "beta",
    "loss_type",
    "num_generations",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "max_completion_length",
    "sampler",
    "temperature",
    "seed",
)

#: Log-history keys that are bookkeeping rather than training metrics.
_NOT_METRICS = {"epoch", "step", "learning_rate", "total_flos"}


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def _trl_dam_version() -> str:
    try:
        return version("trl-dam")
    except PackageNotFoundError:  # running from a source tree that is not installed
        from trl_dam import __version__

        return __version__


def _format(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def training_metrics(log_history: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """``(name, first, last)`` of every scalar metric logged during training or evaluation, in order of appearance.

    The end-of-training summary (``train_runtime``, ``train_loss``, ...) is left out; ``None`` values are skipped.
    """
    first: dict[str, Any] = {}
    last: dict[str, Any] = {}
    for entry in log_history:
        if "train_runtime" in entry:
            continue
        for key, value in entry.items():
            if key in _NOT_METRICS or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            first.setdefault(key, value)
            last[key] = value
    return [(key, _format(first[key]), _format(last[key])) for key in first]


def _quick_start_steps(args) -> tuple[int, int, int]:
    """``(gen_length, steps, block_length)`` for `low_confidence_decode`, from the training sampler's settings."""
    gen_length = args.max_completion_length
    block_length = getattr(args, "block_length", None) or gen_length
    steps = getattr(args, "diffusion_steps", None) or gen_length
    if gen_length % block_length or steps % (gen_length // block_length):
        block_length, steps = gen_length, gen_length
    return gen_length, steps, block_length


def _tags(trainer: Trainer, tags: str | list[str] | None) -> list[str]:
    """TRL's tag handling: the caller's tags, the trainer's `_tag_names`, `hf_jobs` and the Trackio space."""
    tags = set() if tags is None else {tags} if isinstance(tags, str) else set(tags)
    if "JOB_ID" in os.environ:
        tags.add("hf_jobs")
    tags.update(trainer._tag_names)
    trackio_url = get_trackio_space_url()
    if trackio_url is not None:
        tags = {tag for tag in tags if not tag.startswith("trackio:")} | {f"trackio:{trackio_url}"}
    return sorted(tags)


def build_model_card(
    trainer: Trainer,
    model_name: str | None = None,
    dataset_name: str | None = None,
    tags: str | list[str] | None = None,
) -> ModelCard:
    """Render `trainer`'s model card from `trl_dam/templates/<trainer._template_file>`.

    Args:
        trainer: the trainer (its model, tokenizer, arguments, log history and `_name` / `_paper`).
        model_name: the card's title; defaults to the output folder's name.
        dataset_name: hub id (linked and put in the metadata) or local path (named only) of the training data.
        tags: extra tags, added to the trainer's `_tag_names`.
    """
    args = trainer.args
    model = trainer.model
    is_peft = is_peft_model(model)
    model_id = get_config_model_id(model.config) or None
    # As TRL: a local folder is not a hub id, so it stays out of the metadata (the PEFT quick start still names it).
    base_model = model_id if model_id and not os.path.isdir(model_id) else None
    dataset_is_hub = bool(dataset_name) and not os.path.exists(dataset_name)
    model_name = model_name or Path(args.output_dir).name
    hub_model_id = trainer.hub_model_id or args.hub_model_id or model_name
    gen_length, steps, block_length = _quick_start_steps(args)
    tokenizer = getattr(trainer, "_tokenizer", None) or trainer.processing_class
    hyperparameters = [(name, getattr(args, name)) for name in HYPERPARAMETERS if hasattr(args, name)]
    hyperparameters += [
        ("num_processes", trainer.accelerator.num_processes),
        ("global_steps", trainer.state.global_step),
    ]
    if is_wandb_available():
        import wandb

        wandb_url = wandb.run.url if wandb.run is not None else None
    else:
        wandb_url = None

    card_data = ModelCardData(
        base_model=base_model,
        datasets=[dataset_name] if dataset_is_hub else None,
        library_name="peft" if is_peft else "transformers",
        model_name=model_name,
        tags=["generated_from_trainer", *_tags(trainer, tags)],
    )
    template = resources.files("trl_dam").joinpath("templates", trainer._template_file)
    with resources.as_file(template) as template_path:
        return ModelCard.from_template(
            card_data,
            template_path=str(template_path),
            model_name=model_name,
            base_model=base_model,
            base_model_id=model_id or "<base-model-id>",
            hub_model_id=hub_model_id,
            dataset_name=dataset_name,
            dataset_is_hub=dataset_is_hub,
            is_peft=is_peft,
            chat=getattr(tokenizer, "chat_template", None) is not None,
            gen_length=gen_length,
            steps=steps,
            block_length=block_length,
            hyperparameters=[(name, _format(value)) for name, value in hyperparameters],
            metrics=training_metrics(trainer.state.log_history),
            wandb_url=wandb_url,
            trackio_url=get_trackio_space_url(),
            comet_url=get_comet_experiment_url(),
            trainer_name=trainer._name,
            trainer_citation=trainer._paper.get("citation"),
            paper_title=trainer._paper.get("title"),
            paper_id=trainer._paper.get("id"),
            trl_dam_version=_trl_dam_version(),
            trl_version=_version("trl"),
            transformers_version=_version("transformers"),
            pytorch_version=_version("torch"),
            datasets_version=_version("datasets"),
            tokenizers_version=_version("tokenizers"),
            peft_version=_version("peft") if is_peft else None,
        )
