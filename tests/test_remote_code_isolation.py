"""The suite passes whatever the Hugging Face modules cache already holds, and in either file order.

A user who ever loaded a `trust_remote_code` model has a `transformers_modules` package in `$HF_HOME/modules`.
`evaluate.load` puts that folder on `sys.path`; the remote-code tests then import their copied modeling files from a
temporary modules cache (the `isolated_remote_code` fixture), which must win over the existing package. These runs
use a fresh interpreter each, so the `sys.path` and `sys.modules` state is the one a new `pytest` run starts with.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
METRIC_TEST = "tests/test_metrics_tasks.py::test_metric_paths_are_local_modules"
REMOTE_TEST = "tests/test_models_loading.py::test_remote_code_checkpoints"


def _hf_home(tmp_path: Path, with_modules: bool) -> Path:
    home = tmp_path / ("hf_with_modules" if with_modules else "hf_empty")
    home.mkdir()
    if with_modules:
        package = home / "modules" / "transformers_modules"
        package.mkdir(parents=True)
        (home / "modules" / "__init__.py").touch()
        (package / "__init__.py").touch()
    return home


@pytest.mark.parametrize(
    ("with_modules", "order"),
    [(True, [METRIC_TEST, REMOTE_TEST]), (False, [REMOTE_TEST, METRIC_TEST])],
    ids=["cache-holds-transformers_modules/metrics-first", "empty-cache/remote-code-first"],
)
def test_remote_code_tests_pass_whatever_the_modules_cache_holds(tmp_path, with_modules, order):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "PYTEST_"))}
    env.update(HF_HOME=str(_hf_home(tmp_path, with_modules)), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *order],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "3 passed" in result.stdout
