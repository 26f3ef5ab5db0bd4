"""Shared toy masked chain for the brute-force value tests in ``tests/test_core_*.py``, and the character tokenizer
of the tiny models in ``tests/test_models_*.py``.

The ``toy`` fixture gives a state-dependent tabular denoiser over ``(num_real + 1) ** length`` states and exact
enumeration of the masked jump chain (uniform random position order, ``k`` tokens per step, temperature), so the
samplers and estimators of ``trl_dam.core`` can be checked against exact values.
"""

from __future__ import annotations

import itertools
import math
import sys
from types import SimpleNamespace

import pytest
import torch

# Every test model is tiny: intra-op threads only add overhead, and on a busy 2-core machine they cost 10-100x.
torch.set_num_threads(1)


class TableDenoiser:
    """``logits[b, i] = table[code(x_b), i]``: an arbitrary function of the whole state, so the order matters."""

    def __init__(self, length: int, vocab: int, seed: int, scale: float = 1.5, base: TableDenoiser | None = None):
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn(vocab**length, length, vocab, generator=gen, dtype=torch.float64) * scale
        self.table = noise if base is None else base.table + noise
        self.vocab = vocab
        self.powers = vocab ** torch.arange(length)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[encode(x, self.vocab)]


def encode(x: torch.Tensor, vocab: int) -> torch.Tensor:
    """Integer code ``sum_i x_i vocab**i`` of every state (last axis = positions)."""
    return (x * vocab ** torch.arange(x.shape[-1])).sum(-1)


def token_probs(logits: torch.Tensor, mask_id: int, temperature: float = 1.0) -> torch.Tensor:
    """float64 ``softmax(logits / temperature)`` with the mask token removed (independent of the core code)."""
    z = logits.double() / temperature
    z[..., mask_id] = -math.inf
    return torch.softmax(z, -1)


def exact_final_distribution(
    logits_fn, start, mask_id: int, vocab: int, tokens_per_step: int = 1, temperature: float = 1.0, order="random"
) -> torch.Tensor:
    """Exact law of ``X1`` (as a vector over ``encode`` codes) of the masked jump chain from ``start``.

    Each step reveals a uniformly random ``min(k, #masks)``-subset of the masked positions (``order="random"``) or
    the leftmost ones (``order="left"``, a deliberately wrong sampler used to check the tests' power), drawing the
    tokens independently from the same denoiser call at ``temperature``.
    """
    length = len(start)
    real = [v for v in range(vocab) if v != mask_id]
    cache: dict[tuple, torch.Tensor] = {}

    def rec(state: tuple) -> torch.Tensor:
        if state in cache:
            return cache[state]
        masked = [i for i, t in enumerate(state) if t == mask_id]
        out = torch.zeros(vocab**length, dtype=torch.float64)
        if not masked:
            out[sum(t * vocab**i for i, t in enumerate(state))] = 1.0
        else:
            probs = token_probs(logits_fn(torch.tensor([state]))[0], mask_id, temperature).tolist()
            m = min(tokens_per_step, len(masked))
            subsets = list(itertools.combinations(masked, m)) if order == "random" else [tuple(masked[:m])]
            for subset in subsets:
                for toks in itertools.product(real, repeat=m):
                    p = 1.0 / len(subsets)
                    nxt = list(state)
                    for i, v in zip(subset, toks):
                        p *= probs[i][v]
                        nxt[i] = v
                    out.add_(rec(tuple(nxt)), alpha=p)
        cache[state] = out
        return out

    return rec(tuple(int(t) for t in start))


def empirical_distribution(final: torch.Tensor, vocab: int) -> torch.Tensor:
    counts = torch.bincount(encode(final, vocab), minlength=vocab ** final.shape[-1]).double()
    return counts / counts.sum()


def tv_bound(exact: torch.Tensor, num_samples: int, delta: float = 1e-6) -> float:
    """A bound that the empirical total variation exceeds with probability < ``delta``.

    ``E[TV] <= 1/2 sum_z sqrt(p_z (1 - p_z) / N)`` (Jensen) and TV has bounded differences ``1/N``, so by
    McDiarmid ``P(TV > E[TV] + t) <= exp(-2 N t^2)``.
    """
    mean_bound = 0.5 * float(torch.sqrt(exact * (1 - exact) / num_samples).sum())
    return mean_bound + math.sqrt(math.log(1 / delta) / (2 * num_samples))


@pytest.fixture(scope="module")
def single_thread():
    """The toy tensors are tiny: intra-op threads only add overhead (10x on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def toy() -> SimpleNamespace:
    return SimpleNamespace(
        TableDenoiser=TableDenoiser,
        encode=encode,
        token_probs=token_probs,
        exact_final_distribution=exact_final_distribution,
        empirical_distribution=empirical_distribution,
        tv_bound=tv_bound,
    )


@pytest.fixture
def isolated_remote_code(tmp_path, monkeypatch):
    """Remote code is copied into `tmp_path/modules` (not ~/.cache) and imported as a fresh `transformers_modules`.

    The folder goes to the *front* of `sys.path`: transformers only appends its modules cache, and a
    `transformers_modules` package already reachable through an earlier entry (the real HF modules cache, put on
    the path by `evaluate.load` or an earlier remote-code load) would otherwise shadow it, and the relative imports
    of the copied modeling files would resolve there.
    """
    import transformers.dynamic_module_utils as dynamic_module_utils

    modules = str(tmp_path / "modules")
    monkeypatch.setattr(dynamic_module_utils, "HF_MODULES_CACHE", modules)
    monkeypatch.setattr(sys, "path", [modules, *sys.path])
    saved = {name: module for name, module in sys.modules.items() if name.split(".")[0] == "transformers_modules"}
    for name in saved:
        del sys.modules[name]
    yield
    for name in [name for name in sys.modules if name.split(".")[0] == "transformers_modules"]:
        del sys.modules[name]
    sys.modules.update(saved)


@pytest.fixture(scope="module")
def tokenizer():
    """The character tokenizer of the tiny models in `tests/test_models_*.py` (alphabet and a padded batch in
    `tests/model_helpers.py`); a test module with its own `tokenizer` fixture overrides it."""
    from model_helpers import ALPHABET

    from trl_dam.models import build_char_tokenizer

    return build_char_tokenizer(ALPHABET)
