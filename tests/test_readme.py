"""The README's two opening commands and CI must agree: CI runs exactly the README's test command."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "README must open with a bash block of commands"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_install_and_test_commands():
    install, test = _readme_commands()[:2]
    assert install.startswith("pip install torch==2.13.0")
    assert "pip install -e ." in install
    assert "pytest" in test


def test_ci_runs_the_readme_test_command():
    test_command = _readme_commands()[1].split("&&")[-1].strip()
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command.replace("python -m ", "") in ci.replace("python -m ", "")
    assert "-eq 5" in ci  # pytest's "no tests collected" must fail CI
