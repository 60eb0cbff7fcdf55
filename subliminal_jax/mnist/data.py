"""MNIST / Fashion-MNIST from IDX gzip files: download, verify, parse, fall back.

Where the four files come from, in order:
  1. `data_dir` given: read the four IDX files there (any IDX dataset works;
     their sha256 are recorded, not checked against a list).
  2. the cache (`cache_dir`, else $SUBLIMINAL_JAX_DATA, else ~/.cache/subliminal_jax),
     verified against the published MD5s; missing files are downloaded
     (verified, then moved into place atomically).
  3. offline and nothing cached: MNIST falls back LOUDLY to the embedded real
     5k subset shipped in this package; Fashion-MNIST uses Debian's
     `dataset-fashion-mnist` package if installed.
Every bad file raises a one-line UserError naming the file and the fix.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import struct
import sys
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from subliminal_jax.errors import UserError

FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

# Published MD5s of the official gzip files (as listed in torchvision's mnist.py).
PUBLISHED = {
    "mnist": {
        "mirrors": ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                    "https://storage.googleapis.com/cvdf-datasets/mnist/"),
        "md5": dict(zip(FILES, ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                                "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"))),
    },
    "fashion-mnist": {
        "mirrors": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        "md5": dict(zip(FILES, ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                                "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"))),
    },
}

# The embedded subset (5,000 real MNIST digits; attribution in its README.md).
EMBEDDED_DIR = Path(__file__).parent / "datasets" / "mnist-5k"
EMBEDDED_SHA256 = dict(zip(FILES, (
    "c4d7739ab209b8520450dd90df647fecea68cee2a6797d856c5da169748add6e",
    "df8f9cc185b4968360b9aaf971bf7d44f831b3a6f43a7a427e3b1abcbf6cb4de",
    "9a4754128ac72e1aea6839f2365885b1233a631f06f17977222e362bc479e077",
    "0700f81c9da0d3870eb29f5b444b1a77398da9ee99c4e55cecf13d4718e3c5e1")))
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
DATASETS = ("mnist", "fashion-mnist", "mnist-5k")


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Images flattened to (N, 784) uint8, labels (N,) int32, and where they came from."""
    name: str
    source: str                    # human-readable provenance
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    sha256: dict[str, str]         # file name -> sha256 of the gzip file read

    def provenance(self) -> dict:
        return {"name": self.name, "source": self.source, "sha256": self.sha256,
                "n_train": int(len(self.y_train)), "n_test": int(len(self.y_test))}


def scale(x_u8: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 in [-1, 1], as the paper's script."""
    return x_u8.astype(np.float32) / 127.5 - 1.0


def _digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def parse_idx(path: Path) -> np.ndarray:
    """Parse one gzipped IDX file (magic 0x0000 08 ndim, big-endian dims, uint8 data)."""
    path = Path(path)
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise UserError(f"{path}: file not found; pass --data-dir with the four IDX .gz files "
                        f"({', '.join(FILES)})") from None
    except (OSError, EOFError, zlib.error) as e:
        raise UserError(f"{path}: corrupt or truncated gzip ({e}); delete it and re-download, "
                        "or point --data-dir at a good copy") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08 or raw[3] not in (1, 3):
        raise UserError(f"{path}: wrong magic {raw[:4].hex() or '(empty)'}, not a uint8 IDX file "
                        "(expected 00000801 or 00000803); check the file is an MNIST-style IDX .gz")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise UserError(f"{path}: truncated IDX header; re-download the file")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    expected = 4 + 4 * ndim + int(np.prod(dims))
    if len(raw) != expected:
        raise UserError(f"{path}: truncated or padded IDX data ({len(raw)} bytes, header says "
                        f"{expected}); re-download the file")
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def read_dir(directory: Path, name: str, source: str) -> Dataset:
    """Read and cross-check the four IDX files in `directory`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"--data-dir {directory}: not a directory; pass a folder holding {', '.join(FILES)}")
    missing = [f for f in FILES if not (directory / f).is_file()]
    if missing:
        raise UserError(f"{directory / missing[0]}: file not found; the folder needs all of {', '.join(FILES)}")
    arrays = [parse_idx(directory / f) for f in FILES]
    for (f_img, f_lab), (x, y) in zip(((FILES[0], FILES[1]), (FILES[2], FILES[3])),
                                      ((arrays[0], arrays[1]), (arrays[2], arrays[3]))):
        if x.ndim != 3 or y.ndim != 1:
            raise UserError(f"{directory / (f_img if x.ndim != 3 else f_lab)}: wrong IDX rank "
                            f"(images need 3 dims, labels 1); the image and label files may be swapped")
        if len(x) == 0:
            raise UserError(f"{directory / f_img}: an IDX file with no images; use the full dataset's files")
        if len(x) != len(y):
            raise UserError(f"{directory / f_lab}: {len(y)} labels for {len(x)} images in {f_img}; "
                            "use matching files")
        if y.size and y.max() > 9:
            raise UserError(f"{directory / f_lab}: label {y.max()} outside 0-9; not an MNIST label file")
    if arrays[0].shape[1:] != arrays[2].shape[1:]:
        raise UserError(f"{directory}: train images {arrays[0].shape[1:]} and test images "
                        f"{arrays[2].shape[1:]} differ in size; use files from one dataset")
    flat = lambda x: x.reshape(len(x), -1)
    return Dataset(name, source, flat(arrays[0]), arrays[1].astype(np.int32),
                   flat(arrays[2]), arrays[3].astype(np.int32),
                   {f: _digest(directory / f, "sha256") for f in FILES})


def default_cache_dir() -> Path:
    return Path(os.environ.get("SUBLIMINAL_JAX_DATA", Path.home() / ".cache" / "subliminal_jax"))


def _download(url: str, dest: Path, md5: str, timeout: float = 30.0) -> None:
    """Download url to dest atomically: temp file in the same folder, verify, rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as r:
            for block in iter(lambda: r.read(1 << 20), b""):
                out.write(block)
        got = _digest(Path(tmp), "md5")
        if got != md5:
            raise UserError(f"{url}: downloaded file has md5 {got}, published {md5}; "
                            "the mirror is bad, try again later or pass --data-dir")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _fetch_to_cache(name: str, cache: Path) -> None:
    """Make sure the cache holds the four published files; raise OSError if offline."""
    pub = PUBLISHED[name]
    for f in FILES:
        path = cache / f
        if path.exists():
            got = _digest(path, "md5")
            if got != pub["md5"][f]:
                raise UserError(f"{path}: md5 {got} does not match the published {pub['md5'][f]}; "
                                "delete the file to re-download it")
            continue
        errors = []
        for mirror in pub["mirrors"]:
            try:
                print(f"downloading {mirror}{f}", file=sys.stderr)
                _download(mirror + f, path, pub["md5"][f])
                break
            except (urllib.error.URLError, OSError, TimeoutError) as e:
                errors.append(f"{mirror}: {e}")
        else:
            raise OSError("; ".join(errors))


def loud(msg: str) -> None:
    bar = "!" * 78
    print(f"{bar}\n{msg}\n{bar}", file=sys.stderr)


def load(name: str = "mnist", data_dir: str | None = None, cache_dir: str | None = None,
         download: bool = True) -> Dataset:
    """Load a dataset; see the module docstring for where it comes from."""
    if name not in DATASETS:
        raise UserError(f"--dataset {name!r} unknown; choose one of {', '.join(DATASETS)}")
    if data_dir is not None:
        return read_dir(Path(data_dir), name, f"--data-dir {Path(data_dir).resolve()}")
    if name == "mnist-5k":
        return _embedded(name)
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    cache = cache / name
    try:
        if not download and not all((cache / f).exists() for f in FILES):
            raise OSError("downloads disabled")
        _fetch_to_cache(name, cache)
        return read_dir(cache, name, f"published {name} (md5-verified) in {cache}")
    except OSError as e:
        if name == "fashion-mnist" and all((DEBIAN_FASHION_DIR / f).exists() for f in FILES):
            loud(f"OFFLINE ({e}): using Debian's dataset-fashion-mnist in {DEBIAN_FASHION_DIR} "
                 "(full 60k/10k; recompressed, so its gzip hashes are not the published ones)")
            return read_dir(DEBIAN_FASHION_DIR, name, f"Debian dataset-fashion-mnist ({DEBIAN_FASHION_DIR})")
        if name == "fashion-mnist":
            raise UserError(f"fashion-mnist: cannot download ({e}) and none cached; "
                            "run `apt-get install dataset-fashion-mnist` or pass --data-dir") from None
        loud(f"OFFLINE ({e}): full MNIST unavailable. FALLING BACK to the embedded 5,000-digit real "
             "MNIST subset (4k train / 1k test). Numbers are NOT comparable with full-MNIST results. "
             "Use --dataset mnist-5k to choose it explicitly, or --data-dir for your own copy.")
        return _embedded("mnist-5k")


def _embedded(name: str) -> Dataset:
    for f in FILES:
        got = _digest(EMBEDDED_DIR / f, "sha256")
        if got != EMBEDDED_SHA256[f]:
            raise UserError(f"{EMBEDDED_DIR / f}: sha256 {got} is not the shipped file's; "
                            "reinstall subliminal_jax")
    return read_dir(EMBEDDED_DIR, name, "embedded mnist-5k subset (5,000 real MNIST digits, "
                    "LeCun, Cortes & Burges, CC BY-SA 3.0)")
