"""IDX parsing, every bad-file case, download/cache/fallback: all offline."""
import gzip
import hashlib
import io
import struct
import urllib.error

import numpy as np
import pytest

from subliminal_jax.mnist import data
from subliminal_jax.errors import UserError


def idx_bytes(arr: np.ndarray) -> bytes:
    return b"\x00\x00\x08" + bytes([arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def write_gz(path, payload: bytes):
    with gzip.open(path, "wb") as f:
        f.write(payload)


def make_dir(tmp_path, n_train=6, n_test=4, rng=np.random.default_rng(0)):
    arrays = [rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_train, dtype=np.uint8),
              rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_test, dtype=np.uint8)]
    for f, a in zip(data.FILES, arrays):
        write_gz(tmp_path / f, idx_bytes(a))
    return arrays


def one_line_error(excinfo, *needles):
    msg = str(excinfo.value)
    assert "\n" not in msg
    for n in needles:
        assert n in msg, msg


def test_parse_synthetic_idx(tmp_path):
    arrays = make_dir(tmp_path)
    ds = data.read_dir(tmp_path, "mnist", "test")
    np.testing.assert_array_equal(ds.x_train, arrays[0].reshape(6, 784))
    np.testing.assert_array_equal(ds.y_train, arrays[1])
    np.testing.assert_array_equal(ds.x_test, arrays[2].reshape(4, 784))
    assert ds.sha256[data.FILES[0]] == hashlib.sha256((tmp_path / data.FILES[0]).read_bytes()).hexdigest()
    x = data.scale(ds.x_train)
    assert x.dtype == np.float32 and x.min() >= -1 and x.max() <= 1


@pytest.mark.parametrize("case,needle", [
    ("wrong_magic", "wrong magic"),
    ("truncated_gzip", "corrupt or truncated gzip"),
    ("not_gzip", "corrupt or truncated gzip"),
    ("truncated_idx", "truncated or padded IDX"),
    ("empty", "wrong magic"),
])
def test_bad_image_file(tmp_path, case, needle):
    make_dir(tmp_path)
    path = tmp_path / data.FILES[0]
    good = gzip.decompress(path.read_bytes())
    if case == "wrong_magic":
        write_gz(path, b"\x00\x00\x0d\x03" + good[4:])
    elif case == "truncated_gzip":
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    elif case == "not_gzip":
        path.write_bytes(b"<html>404 not found</html>")
    elif case == "truncated_idx":
        write_gz(path, good[:-100])
    elif case == "empty":
        write_gz(path, b"")
    with pytest.raises(UserError) as e:
        data.read_dir(tmp_path, "mnist", "test")
    one_line_error(e, str(path), needle)


def test_missing_file_and_bad_dir(tmp_path):
    make_dir(tmp_path)
    (tmp_path / data.FILES[3]).unlink()
    with pytest.raises(UserError) as e:
        data.load("mnist", data_dir=str(tmp_path))
    one_line_error(e, data.FILES[3], "not found")
    with pytest.raises(UserError) as e:
        data.load("mnist", data_dir=str(tmp_path / "nope"))
    one_line_error(e, "not a directory")


def test_label_count_mismatch(tmp_path):
    make_dir(tmp_path)
    write_gz(tmp_path / data.FILES[1], idx_bytes(np.zeros(5, np.uint8)))
    with pytest.raises(UserError) as e:
        data.read_dir(tmp_path, "mnist", "test")
    one_line_error(e, data.FILES[1], "5 labels for 6 images")


def test_unknown_dataset():
    with pytest.raises(UserError) as e:
        data.load("cifar")
    one_line_error(e, "cifar", "mnist-5k")


def test_embedded_subset_is_real_mnist():
    ds = data.load("mnist-5k")
    assert ds.x_train.shape == (4000, 784) and ds.x_test.shape == (1000, 784)
    assert np.bincount(np.concatenate([ds.y_train, ds.y_test])).tolist() == [500] * 10
    assert ds.sha256 == data.EMBEDDED_SHA256


# --- the download path, with the network replaced by fakes --------------------

@pytest.fixture
def fake_published(tmp_path, monkeypatch):
    """Serve synthetic files as the 'published' MNIST, with their real md5s."""
    src = tmp_path / "src"
    src.mkdir()
    make_dir(src)
    md5 = {f: hashlib.md5((src / f).read_bytes()).hexdigest() for f in data.FILES}
    monkeypatch.setitem(data.PUBLISHED, "mnist", {"mirrors": ("https://mirror.invalid/",), "md5": md5})
    calls = []

    def urlopen(url, timeout=None):
        calls.append(url)
        return io.BytesIO((src / url.rsplit("/", 1)[1]).read_bytes())
    monkeypatch.setattr(data.urllib.request, "urlopen", urlopen)
    return src, md5, calls


def test_download_verifies_and_caches(tmp_path, fake_published):
    src, md5, calls = fake_published
    cache = tmp_path / "cache"
    ds = data.load("mnist", cache_dir=str(cache))
    assert len(calls) == 4 and ds.x_train.shape == (6, 784)
    assert sorted(p.name for p in (cache / "mnist").iterdir()) == sorted(data.FILES)  # no .part left
    data.load("mnist", cache_dir=str(cache))
    assert len(calls) == 4  # second load: served from the cache


def test_download_with_wrong_hash_leaves_nothing(tmp_path, fake_published, monkeypatch):
    src, md5, calls = fake_published
    bad = dict(md5, **{data.FILES[0]: "0" * 32})
    monkeypatch.setitem(data.PUBLISHED, "mnist", {"mirrors": ("https://mirror.invalid/",), "md5": bad})
    cache = tmp_path / "cache"
    with pytest.raises(UserError) as e:
        data.load("mnist", cache_dir=str(cache))
    one_line_error(e, data.FILES[0], "md5")
    assert list((cache / "mnist").iterdir()) == []


def test_cached_file_with_wrong_hash(tmp_path, fake_published):
    cache = tmp_path / "cache"
    data.load("mnist", cache_dir=str(cache))
    (cache / "mnist" / data.FILES[2]).write_bytes(b"tampered")
    with pytest.raises(UserError) as e:
        data.load("mnist", cache_dir=str(cache))
    one_line_error(e, data.FILES[2], "delete the file")


def test_env_var_sets_cache(tmp_path, fake_published, monkeypatch):
    monkeypatch.setenv("SUBLIMINAL_JAX_DATA", str(tmp_path / "envcache"))
    data.load("mnist")
    assert (tmp_path / "envcache" / "mnist" / data.FILES[0]).exists()


def test_offline_falls_back_loudly(tmp_path, monkeypatch, capsys):
    def offline(url, timeout=None):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(data.urllib.request, "urlopen", offline)
    ds = data.load("mnist", cache_dir=str(tmp_path))
    assert ds.name == "mnist-5k" and len(ds.y_train) == 4000
    err = capsys.readouterr().err
    assert "OFFLINE" in err and "FALLING BACK" in err
