import gzip
import pickle
import re

import numpy as np
import pytest
import torch
from PIL import Image

from counterfeit.data import fetch, load_data, to_float, to_uint8
from counterfeit.data.cifar import load_cifar10
from counterfeit.data.folder import load_folder
from counterfeit.data.idx import read_idx, write_idx
from counterfeit.data.toy import gaussian_1d, grid_modes, ring_modes, sample_mixture
from counterfeit.errors import UserError


def test_embedded_set_is_the_first_10k_mnist_digits(digits):
    assert digits.x.shape == (10000, 1, 28, 28) and digits.x.dtype == torch.uint8
    assert np.bincount(digits.y.numpy()).tolist() == [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
    assert abs(digits.x.float().mean().item() / 255 - 0.1307) < 0.003  # MNIST's pixel mean


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_roundtrip_plain_and_gzip(tmp_path, suffix):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / f"x{suffix}", a)
    np.testing.assert_array_equal(read_idx(tmp_path / f"x{suffix}"), a)


def test_corrupt_idx_files_are_user_errors(tmp_path):
    a = np.zeros((5, 4, 4), np.uint8)
    write_idx(tmp_path / "ok", a)
    raw = (tmp_path / "ok").read_bytes()
    (tmp_path / "short").write_bytes(raw[:-3])
    (tmp_path / "magic").write_bytes(b"\x12\x34" + raw[2:])
    (tmp_path / "badgz.gz").write_bytes(gzip.compress(raw)[:30])
    for name, msg in (("short", "header promises"), ("magic", "bad magic"), ("badgz.gz", "corrupt data file")):
        with pytest.raises(UserError, match=msg):
            read_idx(tmp_path / name)
    with pytest.raises(UserError, match="not found"):
        read_idx(tmp_path / "missing")


def test_idx_folder_by_path_with_splits(mnist_dir):
    train = load_data(str(mnist_dir), "train")
    test = load_data(str(mnist_dir), "test")
    both = load_data(str(mnist_dir), "all")
    assert (len(train), len(test), len(both)) == (400, 200, 600)
    assert train.num_classes == 10
    with pytest.raises(UserError, match="paper-valid"):
        load_data(str(mnist_dir), "paper-valid")


def test_named_dataset_found_through_counterfeit_data(tmp_path, mnist_dir, monkeypatch):
    (tmp_path / "root").mkdir()
    mnist_dir.rename(tmp_path / "root" / "mnist")
    monkeypatch.setenv("COUNTERFEIT_DATA", str(tmp_path / "root"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert fetch.locate("mnist") == tmp_path / "root" / "mnist"
    assert len(load_data("mnist", "test")) == 200


def test_offline_without_a_copy_says_where_to_put_files(tmp_path, monkeypatch):
    monkeypatch.setenv("COUNTERFEIT_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("COUNTERFEIT_OFFLINE", "1")
    monkeypatch.setattr(fetch, "SYSTEM_DIRS", {})
    with pytest.raises(UserError, match=r"not found locally.*train-images-idx3-ubyte\[\.gz\].*empty/fashion-mnist"):
        fetch.locate("fashion-mnist")


def test_paper_split_of_full_mnist_when_present():
    try:
        d = fetch.locate("mnist", allow_download=False)
    except UserError:
        pytest.skip("full MNIST not available locally (set COUNTERFEIT_DATA)")
    assert len(load_data("mnist", "paper-train")) == 50000 and len(load_data("mnist", "paper-valid")) == 10000
    assert fetch.sha256_of(fetch.idx_paths(d)["t10k-labels-idx1-ubyte"], uncompressed=True) == \
        fetch.SHA256["mnist"]["t10k-labels-idx1-ubyte"]


def _write_cifar(root, n=6, test_broken=False):
    rng = np.random.default_rng(0)
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, n))}
        with open(d / name, "wb") as f:
            pickle.dump(batch, f)
    return d


def test_cifar_batches(tmp_path):
    d = _write_cifar(tmp_path)
    x, y = load_cifar10(tmp_path, train=True)
    assert x.shape == (30, 3, 32, 32) and x.dtype == torch.uint8 and y.shape == (30,)
    with open(d / "data_batch_1", "rb") as f:
        first = pickle.load(f)[b"data"][0]
    np.testing.assert_array_equal(x[0].numpy().reshape(-1), first)  # channel-major rows, as published
    assert load_cifar10(tmp_path, train=False)[0].shape == (6, 3, 32, 32)
    assert len(load_data(str(tmp_path), "train")) == 30


def test_cifar_refuses_code_and_truncation(tmp_path):
    d = _write_cifar(tmp_path)
    (d / "data_batch_2").write_bytes((d / "data_batch_2").read_bytes()[:100])
    with pytest.raises(UserError, match="corrupt CIFAR-10 batch"):
        load_cifar10(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(d / "data_batch_2", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f)
    with pytest.raises(UserError, match="refusing to load builtins.print"):
        load_cifar10(tmp_path)


def test_image_folder_gray_rgb_resize_and_errors(tmp_path):
    gray = tmp_path / "gray"
    gray.mkdir()
    for i in range(3):
        Image.fromarray(np.full((20, 30), 40 * i, np.uint8)).save(gray / f"{i}.png")
    x = load_folder(gray, image_size=16)
    assert x.shape == (3, 1, 16, 16) and x[2].float().mean() == 80
    rgb = tmp_path / "rgb"
    (rgb / "sub").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(rgb / "a.png")
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(rgb / "sub" / "b.jpg")
    x = load_folder(rgb)
    assert x.shape == (2, 3, 8, 8)
    Image.fromarray(np.zeros((9, 8), np.uint8)).save(rgb / "c.png")
    with pytest.raises(UserError, match="mismatched sizes"):
        load_folder(rgb)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images"):
        load_folder(tmp_path / "empty")
    (rgb / "d.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="unreadable image"):
        load_folder(rgb, image_size=8)


def _mode_cases(a: np.ndarray, rgb: np.ndarray):
    """(mode, file name, image, the uint8 (H, W, C) it must load as): every mode Pillow reads, at its own depth."""
    gray = a[..., None]
    return [
        ("1", "png", Image.fromarray(a).convert("1", dither=Image.Dither.NONE), ((a > 127) * 255).astype(np.uint8)[..., None]),
        ("L", "png", Image.fromarray(a), gray),
        ("LA", "png", Image.merge("LA", [Image.fromarray(a), Image.fromarray(255 - a)]), gray),
        ("P", "png", Image.fromarray(a).convert("P"), gray),
        ("P colour", "gif", Image.fromarray(rgb).quantize(16), None),  # None: whatever its palette says, in RGB
        ("RGB", "png", Image.fromarray(rgb), rgb),
        ("RGBA", "png", Image.fromarray(np.dstack([rgb, a])), rgb),
        ("CMYK", "tiff", Image.fromarray(rgb).convert("CMYK"), rgb),
        ("I;16", "png", Image.fromarray(a.astype(np.uint16) * 257), gray),
        ("I 16-bit", "tiff", Image.fromarray(a.astype(np.int32) * 257), gray),
        ("I 8-bit", "tiff", Image.fromarray(a.astype(np.int32)), gray),
        ("F", "tiff", Image.fromarray(a.astype(np.float32) / 255), gray),
        ("BMP", "bmp", Image.fromarray(rgb), rgb),
        ("WebP lossless", "webp", Image.fromarray(rgb), rgb),
    ]


def test_image_folders_in_every_pillow_mode_load_at_the_right_scale(tmp_path, digits):
    a = digits.x[7, 0].numpy()
    rgb = np.dstack([a, 255 - a, (a // 2 + 60).astype(np.uint8)])
    for i, (mode, ext, im, want) in enumerate(_mode_cases(a, rgb)):
        d = tmp_path / f"m{i}"
        d.mkdir()
        im.save(d / f"x.{ext}", **({"lossless": True} if ext == "webp" else {}))
        assert Image.open(d / f"x.{ext}").mode == mode.split()[0] or ext in ("bmp", "webp"), mode
        x = load_folder(d)[0].permute(1, 2, 0).numpy()
        if want is None:
            want = np.asarray(Image.open(d / f"x.{ext}").convert("RGB"))
        assert x.shape == want.shape and np.array_equal(x, want), (mode, np.abs(x.astype(int) - want).max())
        if want.shape[2] == 1:  # a grey image asked for in colour: three equal channels
            x3 = load_folder(d, channels=3)[0].permute(1, 2, 0).numpy()
            assert np.array_equal(x3, np.repeat(want, 3, axis=2)), mode


@pytest.mark.parametrize("array,fragment", [
    (np.full((8, 8), 70000, np.int32), "span 70000..70000"),
    (np.full((8, 8), -1, np.int32), "span -1..-1"),
    (np.full((8, 8), 2.5, np.float32), "values in [2.5, 2.5]"),
    (np.full((8, 8), np.nan, np.float32), "NaN"),
])
def test_images_whose_values_have_no_8_bit_reading_are_refused_not_clipped(tmp_path, array, fragment):
    Image.fromarray(array).save(tmp_path / "x.tiff")
    with pytest.raises(UserError, match=re.escape(fragment)):
        load_folder(tmp_path)


def test_unknown_dataset_and_split():
    with pytest.raises(UserError, match="unknown dataset 'nope'"):
        load_data("nope")
    with pytest.raises(UserError, match="unknown split"):
        load_data("embedded", "weird")


def test_float_conversion_roundtrip():
    x = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    for r in ("01", "pm1"):
        assert torch.equal(to_uint8(to_float(x, r), r), x)
    assert to_float(x, "pm1").min() == -1 and to_float(x, "pm1").max() == 1


def test_toy_distributions():
    g = torch.Generator().manual_seed(0)
    x = gaussian_1d(20000, 4.0, 0.5, generator=g)
    assert abs(x.mean() - 4.0) < 0.02 and abs(x.std() - 0.5) < 0.02
    ring = ring_modes()
    torch.testing.assert_close(ring.norm(dim=1), torch.ones(8))
    grid = grid_modes()
    assert sorted(set(grid[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0] and len(grid) == 25
    s = sample_mixture("ring8", 8000, generator=g)
    nearest = torch.cdist(s, ring).min(1)
    assert nearest.values.max() < 0.06  # std 0.01: all within 6 sigma
    assert torch.bincount(nearest.indices, minlength=8).min() > 800  # all modes, about equally


def test_an_image_size_that_scales_small_images_up_more_than_twice_is_warned(tmp_path, capsys):
    from counterfeit.data.folder import load_folder

    d = tmp_path / "small"
    d.mkdir()
    for i in range(3):
        Image.fromarray(np.full((20, 24), 40 * i, np.uint8)).save(d / f"{i}.png")
    assert load_folder(d, image_size=40).shape == (3, 1, 40, 40)
    assert capsys.readouterr().err == ""  # 2x: no word
    assert load_folder(d, image_size=64).shape == (3, 1, 64, 64)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data.image_size=64 scales the 20-pixel sides" in err[0] and "3.2x" in err[0]
