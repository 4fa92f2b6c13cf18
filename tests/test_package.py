"""`pip install .` (or from a git URL) gives the library and the `browser-llm` command, in one
top-level package (browser_llm), in a fresh virtual environment."""
from __future__ import annotations

import shutil
import subprocess
import sysconfig
import venv
from pathlib import Path

import pytest

from support import MODELS, ROOT
from test_cli import GREEDY, expected_text

PACKAGE_PARTS = ("pyproject.toml", "browser_llm", "engine", "model_loader")


def package_source(folder: Path) -> Path:
    """A copy of what the package is made of (so a build writes nothing into the repository)."""
    folder.mkdir()
    for part in PACKAGE_PARTS:
        if (ROOT / part).is_dir():
            shutil.copytree(ROOT / part, folder / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / part, folder / part)
    return folder


def git_url(folder: Path) -> str:
    """The folder as a one-commit git repository, as pip installs from a git URL."""
    git = ["git", "-C", str(folder), "-c", "user.name=test", "-c", "user.email=test@example.com"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "package"]):
        subprocess.run([*git, *args], check=True)
    return f"git+file://{folder}"


def fresh_venv(env_dir: Path) -> Path:
    """A new virtual environment that sees the test environment's numpy and tiktoken (nothing to
    download but the build backend); its site-packages."""
    venv.create(env_dir, with_pip=True)
    site = Path(subprocess.run([env_dir / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "test-deps.pth").write_text(sysconfig.get_path("purelib"))
    return site


@pytest.mark.parametrize("how", ["folder", "git URL"])
def test_pip_install_gives_the_command_line_and_no_generic_top_level_package(tmp_path, tiny, how):
    site = fresh_venv(tmp_path / "venv")
    source = package_source(tmp_path / "source")
    target = git_url(source) if how == "git URL" else str(source)
    subprocess.run([tmp_path / "venv" / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps",
                    "--disable-pip-version-check", target], check=True, cwd=tmp_path)
    installed = {path.name for path in site.iterdir()}
    assert "browser_llm" in installed
    assert not installed & {"engine", "model_loader", "worker", "app", "tools", "tests"}
    result = subprocess.run([tmp_path / "venv" / "bin" / "browser-llm", "generate", "--model", str(MODELS / "tiny"),
                             "--prompt", "Once upon", *GREEDY], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip("\n") == expected_text(tiny, "Once upon")
