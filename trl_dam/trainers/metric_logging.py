"""Metric buffering and logging, and GRPO's completions table (a mixin of `DiffusionRLTrainer`)."""

from __future__ import annotations

import math
import os
from collections import defaultdict, deque
from typing import Any

from accelerate.utils import gather, gather_object
from torch import Tensor
from transformers import (
    is_trackio_available,
    is_wandb_available,
)
from transformers.utils import is_rich_available, logging
from trl.trainer.utils import (
    nanstd,
    print_prompt_completions_sample,
)

logger = logging.get_logger(__name__)


class MetricLoggingMixin:
    """Buffers metrics per mode, logs their means with the Trainer's logs, and keeps the completions table."""

    def _setup_metric_logging(self, args) -> None:
        """The metric buffers of both modes and the completions table's columns (called in `__init__`)."""
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
