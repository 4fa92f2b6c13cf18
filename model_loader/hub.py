"""Download a Hugging Face repository's GPT-2 files into a local cache (CPython only)."""
from __future__ import annotations

import os
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

from .checkpoint import files_to_fetch

DEFAULT_ENDPOINT = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
DEFAULT_CACHE = Path(os.environ.get("BROWSER_LLM_CACHE", Path.home() / ".cache" / "browser-llm"))
REPO_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")


class HubError(OSError):
    """The hub refused or failed a download."""


def file_url(endpoint: str, repo_id: str, revision: str, name: str) -> str:
    return f"{endpoint.rstrip('/')}/{repo_id}/resolve/{revision}/{name}"


def download_file(url: str, target: Path) -> bool:
    """Fetch url into target (via a .part file); False if the hub has no such file."""
    part = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as out:
            expected = int(response.headers.get("Content-Length", -1))
            while chunk := response.read(1 << 20):
                out.write(chunk)
    except urllib.error.HTTPError as e:
        if e.code == 404 and e.headers.get("X-Error-Code") not in ("RepoNotFound", "RevisionNotFound"):
            return False
        reason = {401: "not found, private or gated", 403: "gated or forbidden", 404: "not found"}
        raise HubError(f"{url}: HTTP {e.code} ({reason.get(e.code, e.reason)})") from None
    except (urllib.error.URLError, OSError) as e:
        part.unlink(missing_ok=True)
        raise HubError(f"{url}: {e}") from None
    if expected >= 0 and part.stat().st_size != expected:
        part.unlink()
        raise HubError(f"{url}: got {part.stat().st_size} of {expected} bytes")
    part.replace(target)
    return True


def download_repo(repo_id: str, revision: str = "main", endpoint: str = DEFAULT_ENDPOINT,
                  cache_dir: Path = DEFAULT_CACHE) -> Path:
    """Make sure the cache holds the repository's GPT-2 files; return its folder."""
    if not REPO_ID.match(repo_id):
        raise HubError(f"{repo_id!r} is neither a folder nor a Hub repository id like 'openai-community/gpt2'")
    folder = Path(cache_dir) / re.sub(r"\W", "_", endpoint) / repo_id / revision
    folder.mkdir(parents=True, exist_ok=True)
    have: dict[str, bool | None] = {}
    while names := files_to_fetch(have):
        for name in names:
            target = folder / name
            if not target.exists():
                print(f"downloading {name} …", file=sys.stderr)
                if not download_file(file_url(endpoint, repo_id, revision, name), target):
                    have[name] = None
                    continue
            have[name] = target.read_bytes() if name.endswith(".json") else b""
    return folder
