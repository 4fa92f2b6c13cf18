"""`pip install .` gives the library and the `browser-llm` command, in one top-level package
(browser_llm), from a fresh virtual environment."""
from __future__ import annotations

import shutil
import subprocess
import sysconfig
import venv

from support import MODELS, ROOT
from test_cli import GREEDY, expected_text


def test_pip_install_gives_the_command_line_and_no_generic_top_level_package(tmp_path, tiny):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # numpy and tiktoken from the test environment, so nothing is downloaded but the build backend
    (tmp_path / "venv" / site.split(str(env_dir) + "/")[1] / "test-deps.pth").write_text(sysconfig.get_path("purelib"))
    source = tmp_path / "source"  # what the package is made of, so the build writes nothing into the repository
    source.mkdir()
    for part in ("pyproject.toml", "README.md", "browser_llm", "engine", "model_loader"):
        copy = shutil.copytree if (ROOT / part).is_dir() else shutil.copy
        copy(ROOT / part, source / part, **({"ignore": shutil.ignore_patterns("__pycache__")} if copy is shutil.copytree else {}))
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check", str(source)],
                   check=True, cwd=tmp_path)
    installed = {path.name for path in (env_dir / site.split(str(env_dir) + "/")[1]).iterdir()}
    assert "browser_llm" in installed
    assert not installed & {"engine", "model_loader", "worker", "app", "tools", "tests"}
    result = subprocess.run([env_dir / "bin" / "browser-llm", "generate", "--model", str(MODELS / "tiny"),
                             "--prompt", "Once upon", *GREEDY], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip("\n") == expected_text(tiny, "Once upon")
