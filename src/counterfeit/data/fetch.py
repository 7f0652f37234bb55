"""Find a named dataset on disk, or download it once, verified by sha256.

Search order for a name (mnist, fashion-mnist, cifar10):
  1. $COUNTERFEIT_DATA/<name>/          (standard file names, laid out as in shared/datasets)
  2. the user cache dir                 ($XDG_CACHE_HOME or ~/.cache)/counterfeit/<name>/
  3. known system locations             (Debian's dataset-fashion-mnist: /usr/share/datasets/fashion-mnist)
  4. a download from the official mirrors into the cache dir, checked against the sha256 below
Offline with no local copy ends in one line saying where to put which files.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

from ..errors import UserError

IDX_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]

# sha256 of the *uncompressed* IDX content, so re-gzipped copies verify too.
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
    # sha256 of the archive itself
    "cifar10": {"cifar-10-python.tar.gz": "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"},
}

MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
    "cifar10": ["https://www.cs.toronto.edu/~kriz/"],
}

SYSTEM_DIRS = {
    "mnist": ["/usr/share/datasets/mnist"],
    "fashion-mnist": ["/usr/share/datasets/fashion-mnist"],
    "cifar10": ["/usr/share/datasets/cifar10"],
}


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "counterfeit"


def _has_files(d: Path, name: str) -> bool:
    if name == "cifar10":
        return (d / "data_batch_1").is_file() or (d / "cifar-10-batches-py").is_dir() or (
            d / "cifar-10-python.tar.gz"
        ).is_file()
    return all(_find_idx(d, f) is not None for f in IDX_FILES)


def _find_idx(d: Path, stem: str) -> Path | None:
    for cand in (d / stem, d / f"{stem}.gz"):
        if cand.is_file():
            return cand
        if cand.exists():
            raise UserError(f"{cand} is not a file")
    return None


def candidate_dirs(name: str) -> list[Path]:
    dirs = []
    if os.environ.get("COUNTERFEIT_DATA"):
        dirs += [Path(p) / name for p in os.environ["COUNTERFEIT_DATA"].split(os.pathsep) if p]
    dirs.append(cache_dir() / name)
    dirs += [Path(p) for p in SYSTEM_DIRS.get(name, [])]
    return dirs


def sha256_of(path: Path, uncompressed: bool = False) -> str:
    h = hashlib.sha256()
    opener = gzip.open if uncompressed and path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(url: str, dest: Path, timeout: float = 30.0) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as r:
            for chunk in iter(lambda: r.read(1 << 20), b""):
                out.write(chunk)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def download(name: str, dest: Path) -> None:
    """Fetch every file of `name` into dest, verifying sha256; a mismatch deletes the file."""
    errors = []
    for fname, digest in SHA256[name].items():
        remote = fname if name == "cifar10" else f"{fname}.gz"
        target = dest / remote
        for mirror in MIRRORS[name]:
            try:
                _download(mirror + remote, target)
            except OSError as e:
                errors.append(f"{mirror}{remote}: {e}")
                continue
            got = sha256_of(target, uncompressed=name != "cifar10")
            if got != digest:
                target.unlink()
                errors.append(f"{mirror}{remote}: sha256 {got[:12]}... != expected {digest[:12]}...")
                continue
            break
        else:
            raise OSError("; ".join(errors[-2:]))


def locate(name: str, allow_download: bool = True) -> Path:
    """Directory holding dataset `name`, searching local places first."""
    if name not in SHA256:
        raise UserError(f"unknown dataset '{name}'")
    for d in candidate_dirs(name):
        if d.is_dir() and _has_files(d, name):
            return d
    dest = cache_dir() / name
    if allow_download and os.environ.get("COUNTERFEIT_OFFLINE", "") not in ("1", "true"):
        try:
            download(name, dest)
            return dest
        except OSError as e:
            reason = f"download failed ({str(e)[:160]})"
    else:
        reason = "downloads are off (COUNTERFEIT_OFFLINE=1)"
    files = ", ".join(SHA256[name]) if name == "cifar10" else ", ".join(f + "[.gz]" for f in IDX_FILES)
    where = " or ".join(str(d) for d in candidate_dirs(name)[:2])
    raise UserError(f"dataset '{name}' not found locally and {reason}: put {files} in {where} (or pass --data PATH)")


def idx_paths(d: Path) -> dict[str, Path | None]:
    return {stem: _find_idx(d, stem) for stem in IDX_FILES}
