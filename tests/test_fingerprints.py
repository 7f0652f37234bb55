"""Nothing that works changes by accident: every preset's networks after 20 steps match the recorded fingerprints
(tests/fingerprints.py explains both records; `python tests/fingerprints.py --write` re-records them)."""

from __future__ import annotations

import json

import pytest
import torch

import fingerprints as F

RECORD = json.loads(F.FILE.read_text())


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    return F.write_small_data(tmp_path_factory.mktemp("fingerprint-data"))


@pytest.mark.parametrize("preset", F.presets())
def test_preset_trains_to_its_recorded_fingerprint(preset, small_data, tmp_path):
    assert preset in RECORD["approx"], f"no fingerprint recorded for {preset}: run python tests/fingerprints.py --write"
    got = F.run_preset(preset, small_data, tmp_path)
    want = RECORD["approx"][preset]
    assert F.mismatches(want, got["approx"], F.approx_tol(want)) == []
    exact = RECORD["exact"].get(F.cpu_kind(), {}).get(preset)
    if exact is not None:  # recorded on this CPU kind and torch: the same kernels give the same bits
        assert got["exact"] == exact, [k for k in exact if got["exact"].get(k) != exact[k]][:5]


def _ulp_up(monkeypatch):
    """Every initial weight one ulp larger: the smallest change a kernel on another CPU could make."""
    import counterfeit.loop.setup as T

    build = T.build_recipe

    def nudged(cfg, shape, data=None):
        r = build(cfg, shape, data)
        with torch.no_grad():
            for net in r.nets.values():
                for p in net.parameters():
                    p.copy_(torch.nextafter(p, torch.full_like(p, float("inf"))))
        return r

    monkeypatch.setattr(T, "build_recipe", nudged)


def test_the_approximate_check_passes_kernel_noise_and_fails_a_changed_update(small_data, tmp_path, monkeypatch):
    # toy2d-gan (MLPs, Adam): a one-ulp change of every initial weight changes the bits but stays far inside the
    # tolerance; a D learning rate 1% off does not
    want = RECORD["approx"]["toy2d-gan"]
    base = F.run_preset("toy2d-gan", small_data, tmp_path / "base")
    lr = F.run_preset("toy2d-gan", small_data, tmp_path / "lr", ["optim.lr_d=0.00101"])
    with monkeypatch.context() as m:
        _ulp_up(m)
        ulp = F.run_preset("toy2d-gan", small_data, tmp_path / "ulp")
    assert ulp["exact"] != base["exact"]
    assert F.mismatches(want, ulp["approx"], want["tol"]) == []
    assert F.mismatches(want, lr["approx"], want["tol"]) != []
    # dcgan-mnist (convolutions, BatchNorm, Adam): oneDNN off runs other convolution kernels; the result passes. A
    # changed update (two D steps per G step) fails. Subtler changes hide in this preset's noise after 20 steps (the
    # minimax G loss ends 0.026 away against a tolerance of 0.027; halving D's loss is invisible to Adam), which is
    # why the exact hashes are compared wherever this CPU kind recorded them
    want = RECORD["approx"]["dcgan-mnist"]
    torch.backends.mkldnn.enabled = False
    try:
        other_kernels = F.run_preset("dcgan-mnist", small_data, tmp_path / "no-onednn")
    finally:
        torch.backends.mkldnn.enabled = True
    two_d_steps = F.run_preset("dcgan-mnist", small_data, tmp_path / "k2", ["train.n_dis=2"])
    assert other_kernels["exact"] != RECORD["exact"].get(F.cpu_kind(), {}).get("dcgan-mnist", {})
    assert F.mismatches(want, other_kernels["approx"], want["tol"]) == []
    assert F.mismatches(want, two_d_steps["approx"], want["tol"]) != []
