"""`push_to_hub` / `hub_model_id` / `hub_strategy` and the model card, against a fake Hub (no network).

`HfApi.create_repo` and `HfApi.upload_folder` are replaced by a fake that copies what would be uploaded into a local
"remote" folder (with the Hub's ignore-pattern filtering), so the tests inspect exactly the files a push would send,
reload them with the auto classes, and run the model card's quick start against them.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest
import torch
import trl
from datasets import Dataset
from huggingface_hub import HfApi, ModelCard
from huggingface_hub.utils import filter_repo_objects
from trainer_helpers import cpu_config_kwargs
from transformers import AutoModel, AutoTokenizer

from trl_dam.core import low_confidence_decode
from trl_dam.models import build_char_tokenizer, build_tiny_masked_lm, resolve_adapter
from trl_dam.trainers import DAMConfig, DAMTrainer
from trl_dam.trainers.model_card import _trl_dam_version

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

N = 6
PROMPTS = ["abc", "de", "fgh a", "h", "bb", "cab", "g", "ef"]
TOKENIZER_FILES = {"tokenizer.json", "tokenizer_config.json"}


@pytest.fixture(scope="module")
def tokenizer():
    return build_char_tokenizer("abcdefgh ")


def frac_a(completions, **kwargs):
    texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
    return [t.count("a") / N for t in texts]


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """A fake Hub: repos are folders under ``tmp_path / "hub"``; every upload is recorded."""
    state = SimpleNamespace(root=tmp_path / "hub", repos=[], uploads=[])

    def create_repo(self, repo_id, *, token=None, private=None, exist_ok=False, **kwargs):
        repo_id = repo_id if "/" in repo_id else f"tester/{repo_id}"
        state.repos.append(repo_id)
        (state.root / repo_id).mkdir(parents=True, exist_ok=True)
        return SimpleNamespace(repo_id=repo_id)

    def upload_folder(self, *, repo_id, folder_path, path_in_repo=None, run_as_future=False, **kwargs):
        folder = Path(folder_path)
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        files = list(filter_repo_objects(files, ignore_patterns=kwargs.get("ignore_patterns")))
        target = state.root / repo_id / (path_in_repo or "")
        for name in files:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(folder / name, target / name)
        state.uploads.append(SimpleNamespace(repo_id=repo_id, path_in_repo=path_in_repo, files=files, **kwargs))
        if not run_as_future:
            return SimpleNamespace(commit_url=f"https://huggingface.co/{repo_id}")
        done = Future()
        done.set_result(None)
        return done

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return state


def make_args(tmp_path, **overrides) -> DAMConfig:
    kwargs = cpu_config_kwargs(tmp_path, output_dir=str(tmp_path / "tiny-dam"), max_steps=2, beta=0.05)
    return DAMConfig(**(kwargs | {"lr_scheduler_type": "linear"} | overrides))


def logits(model, tokenizer, trainer) -> torch.Tensor:
    """Denoiser logits of a few masked canvases (left-padded prompts, then N masks)."""
    x = trainer._canvas(trainer._tokenize_prompts(PROMPTS[:3]))
    with torch.no_grad():
        return resolve_adapter(model, tokenizer).logits(model, x, trainer._attention_mask(x))


def quick_start(card_text: str) -> str:
    """The first Python block of the card's Quick start section."""
    section = card_text.split("## Quick start", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def run_snippet(code: str) -> str:
    """Execute `code` in a fresh namespace and return what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<model card quick start>", "exec"), {"__name__": "__quick_start__"})
    return out.getvalue().strip()


def expected_completion(model, tokenizer) -> str:
    """What the quick start should print: greedy low-confidence decoding of its prompt with the trained model."""
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 7 + 5?"}],
        add_generation_prompt=True,
        return_dict=True,
        return_tensors="pt",
    )["input_ids"]
    adapter = resolve_adapter(model, tokenizer)
    canvas = torch.cat([prompt, torch.full((1, N), adapter.mask_token_id)], dim=1)
    with torch.no_grad():
        output = low_confidence_decode(adapter.bind(model), canvas, adapter.mask_token_id, steps=N, block_length=N)
    return tokenizer.decode(output[0, prompt.shape[1] :], skip_special_tokens=True)


# ---------------------------------------------------------------------------------------------------- full model


def test_push_full_model_card_and_reload(hub, tmp_path, tokenizer):
    model = build_tiny_masked_lm(tokenizer, kind="llada", seed=0)
    model.config._name_or_path = "tiny-org/tiny-llada"  # as if loaded from the Hub
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    args = make_args(
        tmp_path, push_to_hub=True, hub_model_id="tester/tiny-dam", hub_strategy="checkpoint", save_strategy="steps"
    )
    dataset = Dataset.from_dict({"prompt": PROMPTS})
    trainer = DAMTrainer(model, frac_a, args=args, train_dataset=dataset, processing_class=tokenizer)
    assert hub.repos == ["tester/tiny-dam"] and trainer.hub_model_id == "tester/tiny-dam"
    trainer.train()
    trainer.push_to_hub(dataset_name="tester/prompts")

    remote = hub.root / "tester/tiny-dam"
    final = hub.uploads[-1]
    assert final.path_in_repo is None and final.commit_message == "End of training"
    # Weights, config, tokenizer, card and training arguments; no checkpoint folders and no `_*` files at the root.
    assert {"config.json", "model.safetensors", "README.md", "training_args.bin"} | TOKENIZER_FILES <= set(final.files)
    assert not any(name.startswith(("checkpoint-", "_")) for name in final.files)
    # hub_strategy="checkpoint": the latest checkpoint, with the sampler state / replay buffer, under last-checkpoint/.
    checkpoint = {"model.safetensors", "optimizer.pt", "scheduler.pt", "trainer_state.json", "sampler_state_0.pt"}
    assert checkpoint <= {p.name for p in (remote / "last-checkpoint").iterdir()}
    assert "README.md" in hub.uploads[0].files  # checkpoint pushes carry the card too

    card = ModelCard.load(remote / "README.md")
    assert card.data.base_model == "tiny-org/tiny-llada"
    assert card.data.datasets == ["tester/prompts"]
    assert card.data.library_name == "transformers"
    assert {"generated_from_trainer", "trl", "trl-dam", "dam"} <= set(card.data.tags)
    text = card.text
    assert "[tiny-org/tiny-llada](https://huggingface.co/tiny-org/tiny-llada)" in text
    assert "[tester/prompts](https://huggingface.co/datasets/tester/prompts)" in text
    assert f"- trl_dam: {_trl_dam_version()}" in text and f"- TRL: {trl.__version__}" in text
    assert "@inproceedings{so2026discrete" in text and "https://huggingface.co/papers/2602.07132" in text
    assert "- beta: 0.05" in text and "- global_steps: 2" in text
    loss_row = re.search(r"^\| loss \| (\S+) \| (\S+) \|$", text, re.MULTILINE)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert loss_row and loss_row.groups() == (f"{losses[0]:.4g}", f"{losses[-1]:.4g}")
    for metric in ("reward", "dam/ess_fraction", "dam/kl_estimate"):
        assert re.search(rf"^\| {metric} \| ", text, re.MULTILINE), metric

    # The uploaded folder loads with the auto classes and gives the fine-tuned logits.
    loaded = AutoModel.from_pretrained(remote)
    loaded_tokenizer = AutoTokenizer.from_pretrained(remote)
    assert loaded_tokenizer("abc de")["input_ids"] == tokenizer("abc de")["input_ids"]
    torch.testing.assert_close(logits(loaded, tokenizer, trainer), logits(trainer.model, tokenizer, trainer))
    assert any(not torch.equal(initial[k], v) for k, v in loaded.state_dict().items())  # it did train

    # The card's quick start runs as written once the hub id points at the uploaded folder.
    code = quick_start(text)
    assert "load_diffusion_lm" in code and "low_confidence_decode" in code and "pipeline" not in code
    assert code.count('"tester/tiny-dam"') == 1
    printed = run_snippet(code.replace('"tester/tiny-dam"', repr(str(remote))))
    assert printed == expected_completion(trainer.model.eval(), tokenizer)


# ---------------------------------------------------------------------------------------------------- PEFT


def test_push_peft_adapter_and_reload_with_and_without_merging(hub, tmp_path, tokenizer):
    from peft import LoraConfig, PeftModel

    base_path = tmp_path / "tiny-base"
    build_tiny_masked_lm(tokenizer, kind="llada", seed=0).save_pretrained(base_path)
    tokenizer.save_pretrained(base_path)
    args = make_args(tmp_path, push_to_hub=True, hub_model_id="tester/tiny-dam-lora", hub_strategy="end")
    peft_config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])
    dataset = Dataset.from_dict({"prompt": PROMPTS})
    trainer = DAMTrainer(str(base_path), frac_a, args=args, train_dataset=dataset, peft_config=peft_config)
    trainer.train()
    trainer.push_to_hub()

    assert len(hub.uploads) == 1  # hub_strategy="end": nothing during training
    remote = hub.root / "tester/tiny-dam-lora"
    files = set(hub.uploads[0].files)
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} | TOKENIZER_FILES <= files
    assert "model.safetensors" not in files  # the adapter only, not a copy of the base weights

    card = ModelCard.load(remote / "README.md")
    assert card.data.library_name == "peft"
    assert card.data.base_model is None  # a local folder is not a hub id
    assert "- PEFT: " in card.text

    trained = logits(trainer.model, tokenizer, trainer)
    base_logits = logits(AutoModel.from_pretrained(base_path), tokenizer, trainer)
    assert not torch.allclose(trained, base_logits)  # the adapter learned something
    adapted = PeftModel.from_pretrained(AutoModel.from_pretrained(base_path), remote).eval()
    torch.testing.assert_close(logits(adapted, tokenizer, trainer), trained)
    merged = adapted.merge_and_unload()
    torch.testing.assert_close(logits(merged, tokenizer, trainer), trained, atol=1e-5, rtol=1e-5)
    # transformers' PEFT integration: the auto class reads adapter_config.json and loads base + adapter.
    torch.testing.assert_close(logits(AutoModel.from_pretrained(remote), tokenizer, trainer), trained)

    code = quick_start(card.text)
    assert "PeftModel.from_pretrained" in code and f'load_diffusion_lm("{base_path}")' in code
    printed = run_snippet(code.replace('"tester/tiny-dam-lora"', repr(str(remote))))
    assert printed == expected_completion(merged, tokenizer)


# ---------------------------------------------------------------------------------------------------- hub_strategy


@pytest.mark.parametrize(
    ("strategy", "pushed_folders"),
    [
        ("end", []),
        ("every_save", [None, None]),
        ("checkpoint", [None, "last-checkpoint", None, "last-checkpoint"]),
        ("all_checkpoints", [None, "checkpoint-1", None, "checkpoint-2"]),
    ],
)
def test_hub_strategy_and_default_repo_name(hub, tmp_path, tokenizer, strategy, pushed_folders):
    args = make_args(tmp_path, push_to_hub=True, hub_strategy=strategy, save_strategy="steps", save_steps=1)
    model = build_tiny_masked_lm(tokenizer, kind="llada", seed=0)
    dataset = Dataset.from_dict({"prompt": PROMPTS})
    trainer = DAMTrainer(model, frac_a, args=args, train_dataset=dataset, processing_class=tokenizer)
    assert trainer.hub_model_id == "tester/tiny-dam"  # no hub_model_id: the output folder's name
    trainer.train()
    assert [upload.path_in_repo for upload in hub.uploads] == pushed_folders
    for upload in hub.uploads:
        if upload.path_in_repo is None:  # the model folder: card included, checkpoints excluded
            assert "README.md" in upload.files and not any(f.startswith("checkpoint-") for f in upload.files)
        else:
            assert "sampler_state_0.pt" in upload.files and "trainer_state.json" in upload.files
