#!/usr/bin/env python3
"""axe-core (the accessibility checker the browser tests inject), verified, from npm.

    python tools/axe_core.py [DIR]     # print the path of axe.min.js, fetched into DIR if needed

DIR defaults to $BROWSER_LLM_TEST_CACHE, else ~/.cache/browser-llm-tests (outside the repository).

``npm pack`` fetches the pinned tarball; its sha512 integrity must equal the pinned one (the same
check as tools/vendor_runtime.py), and the extracted ``axe.min.js`` its pinned sha256. A copy
already in the folder is used when its sha256 matches, so only the first run needs the registry.
Test-only: never served with the app.
"""

from __future__ import annotations

import os
import sys
import tarfile
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the `tools` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.vendor_runtime import NpmPackage, VendorError, npm_pack, sha256_file  # noqa: E402

AXE_CORE = NpmPackage(
    name="axe-core",
    version="4.14.1",
    integrity="sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ==",
    files={"axe.min.js": "axe.min.js"},
)
AXE_MIN_SHA256 = "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c"
TEST_CACHE = Path(os.environ.get("BROWSER_LLM_TEST_CACHE") or Path.home() / ".cache" / "browser-llm-tests")


def axe_min_js(folder: Path = TEST_CACHE) -> Path:
    """``folder/axe-core-<version>/axe.min.js``, fetched and checked if not already there."""
    target = Path(folder) / f"axe-core-{AXE_CORE.version}" / "axe.min.js"
    if target.is_file() and sha256_file(target) == AXE_MIN_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="axe-core-") as tmp:
        tarball = npm_pack(AXE_CORE, Path(tmp))  # raises VendorError unless the integrity matches
        with tarfile.open(tarball, "r:gz") as tar:
            member = tar.extractfile("package/axe.min.js")
            if member is None:
                raise VendorError(f"{AXE_CORE.spec}: package/axe.min.js is not a file")
            staged = target.with_suffix(".part")
            staged.write_bytes(member.read())
    if (actual := sha256_file(staged)) != AXE_MIN_SHA256:
        staged.unlink()
        raise VendorError(f"{AXE_CORE.spec}: axe.min.js sha256 {actual} != {AXE_MIN_SHA256}")
    staged.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0]) if args else TEST_CACHE
    try:
        print(axe_min_js(folder))
    except VendorError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
