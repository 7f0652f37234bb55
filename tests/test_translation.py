"""Image-to-image translation: readers, the built-in tasks, Pix2Pix and CycleGAN on the loop, translate, evaluate."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from counterfeit import config
from counterfeit.checkpoint import latest_checkpoint, safe_load
from counterfeit.cli.__main__ import main
from counterfeit.data import fetch, load_data
from counterfeit.data.translation import edge_maps, jitter, load_translation
from counterfeit.recipes import build_recipe
from counterfeit.recipes.base import Phase
from counterfeit.loop import train
from conftest import digits32, save_png


def tiny(preset: str, data, steps=2, extra=()):
    return config.load_config(preset, [f"data.name={data}", "model.width_g=4", "model.width_d=4", "model.n_blocks=1",
                                       "model.patch_layers=1", "train.batch_size=4", f"train.steps={steps}",
                                       "train.sample_every=1000", "train.checkpoint_every=1000", "train.log_every=1",
                                       "train.sample_grid=2", "optim.linear_decay_start=0", *extra])


# ---------------------------------------------------------------------------------------------- data


def test_aligned_reader_splits_side_by_side_images(aligned_dir, digits):
    d = load_data(str(aligned_dir), "train")
    x = torch.from_numpy(digits32(digits, 24))
    assert d.paired and d.shape == ((1, 32, 32), (1, 32, 32)) and len(d) == 24
    assert torch.equal(d.A[:, 0], x) and torch.equal(d.B[:, 0], 255 - x)
    assert list(d.index_groups[0]) == ["A", "B"] and len(d.index_groups) == 1  # pairs share one index
    swapped = load_translation(str(aligned_dir), "train", direction="BtoA")
    assert torch.equal(swapped.A, d.B)


def test_unpaired_reader_and_its_errors(unpaired_dir, tmp_path, capsys):
    d = load_data(str(unpaired_dir), "train")
    assert not d.paired and (len(d.A), len(d.B)) == (20, 24) and len(d.index_groups) == 2
    broken = tmp_path / "broken"
    (broken / "trainA").mkdir(parents=True)
    save_png(np.zeros((8, 8), np.uint8), broken / "trainA" / "a.png")
    with pytest.raises(Exception, match=r"has trainA/ but no trainB/"):
        load_data(str(broken), "train")
    save_png(np.zeros((8, 8, 3), np.uint8), broken / "trainA" / "b.png")
    (broken / "trainB").mkdir()
    save_png(np.zeros((8, 8), np.uint8), broken / "trainB" / "c.png")
    with pytest.raises(Exception, match=r"mixed channel counts in .*trainA: 1 grayscale and 1 colour"):
        load_data(str(broken), "train")
    odd = tmp_path / "odd" / "train"
    odd.mkdir(parents=True)
    save_png(np.zeros((8, 17), np.uint8), odd / "x.png")
    code = main(["train", "pix2pix-edges2fashion", "--data", str(odd.parent), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "odd width 17" in err and not (tmp_path / "r").exists()


def test_jitter_gives_a_pair_one_crop_and_flip_and_unpaired_domains_their_own():
    torch.manual_seed(0)
    x = torch.randn(16, 1, 10, 12)
    out = jitter({"A": x, "B": x.clone()}, crop=8, flip=True, paired=True)
    assert out["A"].shape == (16, 1, 8, 8) and torch.equal(out["A"], out["B"])
    apart = jitter({"A": x, "B": x.clone()}, crop=8, flip=True, paired=False)
    assert not torch.equal(apart["A"], apart["B"])
    # every output is a crop of its input, possibly mirrored
    for i in range(16):
        a = out["A"][i, 0]
        found = any(torch.equal(a, src[t : t + 8, s : s + 8]) for src in (x[i, 0], x[i, 0].flip(-1))
                    for t in range(3) for s in range(5))
        assert found


def test_edge_operator_marks_the_outline_of_a_square():
    img = torch.zeros(1, 1, 28, 28, dtype=torch.uint8)
    img[0, 0, 8:20, 8:20] = 200
    e = edge_maps(img)[0, 0]
    assert e.dtype == torch.uint8 and set(e.unique().tolist()) == {0, 255}
    on = e > 0
    assert on[8:20, 7:9].any(dim=1).float().mean() > 0.8  # the left side of the square is an edge
    assert not on[11:17, 11:17].any() and not on[:4].any()  # the flat inside and the empty border are not


def _have_fashion() -> bool:
    try:
        fetch.locate("fashion-mnist", allow_download=False)
        return True
    except Exception:
        return False


@pytest.mark.skipif(not _have_fashion(), reason="Fashion-MNIST is not on this machine")
def test_edges2fashion_unpaired_never_pairs_an_article_with_its_own_edges():
    paired, unpaired = load_data("edges2fashion", "train"), load_data("edges2fashion-unpaired", "train")
    assert paired.shape == ((1, 32, 32), (1, 32, 32)) and len(paired) == 60000
    assert len(unpaired.A) == len(unpaired.B) == 30000 and not unpaired.paired
    assert torch.equal(unpaired.A, paired.A[:30000]) and torch.equal(unpaired.B, paired.B[30000:])
    test = load_data("edges2fashion-unpaired", "test")
    assert test.paired and len(test) == 10000 and test.scorer == "fashion-mnist" and test.border == 2
    assert not test.B[:, :, :2].any() and not test.A[:, :, :, -2:].any()  # the padding is black


# ---------------------------------------------------------------------------------------------- recipes


def test_pix2pix_phases_nets_and_refusals(aligned_dir, unpaired_dir):
    data = load_data(str(aligned_dir), "train")
    r = build_recipe(tiny("pix2pix-edges2fashion", aligned_dir), data.shape, data)
    assert set(r.nets) == {"G", "D"} and r.nets["D"].net[0].in_channels == 2  # D sees (a, b)
    assert r.phases() == [Phase(("D",)), Phase(("G",), data=False, freeze=("D",))]
    l1 = build_recipe(tiny("pix2pix-edges2fashion-l1", aligned_dir), data.shape, data)
    assert set(l1.nets) == {"G"} and l1.phases() == [Phase(("G",))]
    un = load_data(str(unpaired_dir), "train")
    with pytest.raises(Exception, match="aligned pairs"):
        build_recipe(tiny("pix2pix-edges2fashion", unpaired_dir), un.shape, un)
    with pytest.raises(Exception, match="translates images between two domains"):
        build_recipe(tiny("cyclegan-edges2fashion", "mnist"), (1, 28, 28), None)


def test_cycle_and_identity_terms_against_hand_values(unpaired_dir):
    data = load_data(str(unpaired_dir), "train")
    r = build_recipe(tiny("cyclegan-edges2fashion", unpaired_dir), data.shape, data)

    class Shift(torch.nn.Module):
        def __init__(self, c):
            super().__init__()
            self.c = c

        def forward(self, x):
            return x + self.c

    a, b = torch.rand(3, 1, 32, 32), torch.rand(3, 1, 32, 32)
    r.nets["G_AB"], r.nets["G_BA"] = torch.nn.Identity(), torch.nn.Identity()
    terms, _, _ = r.g_terms(a, b)
    for k in ("cycle_A", "cycle_B", "idt_A", "idt_B"):
        assert float(terms[k]) == 0.0, k  # an identity G: nothing to reconstruct, nothing moved
    r.nets["G_AB"], r.nets["G_BA"] = Shift(0.5), Shift(-0.25)
    terms, fake_a, fake_b = r.g_terms(a, b)
    lam, idt = 10.0, 0.5
    assert torch.allclose(fake_b, a + 0.5) and torch.allclose(fake_a, b - 0.25)
    assert float(terms["cycle_A"]) == pytest.approx(lam * 0.25, abs=1e-5)  # G_BA(G_AB(a)) = a + 0.25
    assert float(terms["cycle_B"]) == pytest.approx(lam * 0.25, abs=1e-5)
    assert float(terms["idt_A"]) == pytest.approx(lam * idt * 0.5, abs=1e-5)  # |G_AB(b) - b| = 0.5
    assert float(terms["idt_B"]) == pytest.approx(lam * idt * 0.25, abs=1e-5)
    off = build_recipe(tiny("cyclegan-edges2fashion", unpaired_dir, extra=["loss.identity_weight=0"]), data.shape, data)
    off.nets["G_AB"], off.nets["G_BA"] = Shift(0.5), Shift(-0.25)
    assert "idt_A" not in off.g_terms(a, b)[0]


def _state(run):
    return safe_load(latest_checkpoint(run))


@pytest.mark.parametrize("preset,fixture", [("pix2pix-edges2fashion", "aligned_dir"),
                                            ("cyclegan-edges2fashion", "unpaired_dir")])
def test_one_step_changes_every_network(preset, fixture, request, tmp_path):
    root = request.getfixturevalue(fixture)
    cfg = tiny(preset, root, steps=1)
    data = load_data(str(root), "train")
    torch.manual_seed(cfg.train.seed)  # as train() does before it builds the recipe: the initial weights
    init = {n: {k: v.clone() for k, v in m.state_dict().items()} for n, m in build_recipe(cfg, data.shape, data).nets.items()}
    train(cfg, tmp_path / "run", progress=False)
    after = _state(tmp_path / "run")["nets"]
    assert set(after) == set(init)
    for name, sd in init.items():
        changed = [k for k, v in sd.items() if v.is_floating_point() and not torch.equal(v, after[name][k])]
        assert changed, f"{name} did not change in one step"
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = {k for r in rows for k in r}
    want = {"loss/G/adv", "loss/G/l1", "loss/D/adv"} if preset.startswith("pix2pix") else \
        {"loss/G/cycle_A", "loss/G/idt_B", "loss/G/adv_AB", "loss/D/adv_A", "loss/D/adv_B"}
    assert want <= logged
    assert (tmp_path / "run" / "samples" / "step-00000001.png").is_file()


def test_cyclegan_resume_is_bit_exact_pool_included(unpaired_dir, tmp_path):
    extra = ["loss.pool_size=3", "data.flip=true", "data.crop_size=28"]  # the pool fills and swaps; jitter draws RNG
    train(tiny("cyclegan-edges2fashion", unpaired_dir, steps=4, extra=extra), tmp_path / "full", progress=False)
    train(tiny("cyclegan-edges2fashion", unpaired_dir, steps=2, extra=extra), tmp_path / "half", progress=False)
    train(tiny("cyclegan-edges2fashion", unpaired_dir, steps=4, extra=extra), tmp_path / "half", resume=True,
          progress=False)
    full, resumed = _state(tmp_path / "full"), _state(tmp_path / "half")
    assert resumed["step"] == 4
    for name in full["nets"]:
        for k, v in full["nets"][name].items():
            assert torch.equal(v, resumed["nets"][name][k]), (name, k)
    pf, pr = full["recipe"]["pool_A"], resumed["recipe"]["pool_A"]
    assert pf["images"].shape[0] == 3 and torch.equal(pf["images"], pr["images"])
    assert torch.equal(full["recipe"]["pool_B"]["images"], resumed["recipe"]["pool_B"]["images"])


# ---------------------------------------------------------------------------------------------- translate, evaluate


def test_translate_and_evaluate_a_tiny_run(aligned_dir, unpaired_dir, tmp_path, capsys):
    run = tmp_path / "p2p"
    assert main(["train", "pix2pix-edges2fashion", "--data", str(aligned_dir), "--out", str(run), "--steps", "3",
                 "--no-progress", "--set", "model.width_g=4", "--set", "model.width_d=4",
                 "--set", "train.batch_size=4", "--set", "train.sample_grid=2"]) == 0
    capsys.readouterr()
    # the AB files are 32x64: both sides divisible by 32, so the fully convolutional G takes them whole
    assert main(["translate", str(run), "--input", str(aligned_dir / "test"), "--out", str(tmp_path / "out")]) == 0
    wide = sorted((tmp_path / "out").iterdir())
    assert len(wide) == 8 and wide[0].name == "000.png" and Image.open(wide[0]).size == (64, 32)
    out_npz = tmp_path / "t.npz"
    np.savez(tmp_path / "in.npz", images=_digits_from(aligned_dir))
    assert main(["translate", str(run), "--input", str(tmp_path / "in.npz"), "--out", str(out_npz)]) == 0
    with np.load(out_npz) as z:
        assert z["images"].shape == (8, 32, 32, 1) and z["images"].dtype == np.uint8
    capsys.readouterr()
    assert main(["evaluate", str(run), "--metrics", "l1,psnr,ssim", "--json", str(tmp_path / "e.json")]) == 0
    printed = capsys.readouterr().out
    assert "l1:" in printed and "psnr:" in printed and "ssim:" in printed
    r = json.loads((tmp_path / "e.json").read_text())
    assert r["l1"]["n"] == 8 and 0 <= r["l1"]["l1"] <= 1 and -1 <= r["ssim"]["ssim"] <= 1
    assert r["ssim"]["settings"]["sigma"] == 1.5 and r["provenance"]["net_mode"] == "eval"
    # doing nothing scores the baseline: the input is the target's negative, so its L1 is large
    assert r["l1"]["baseline_input"] > 0.3
    assert main(["translate", str(run), "--input", str(tmp_path / "in.npz"), "--out", str(out_npz)]) == 2
    assert main(["translate", str(run), "--input", str(tmp_path / "in.npz"), "--out", str(tmp_path / "x.npz"),
                 "--direction", "BtoA"]) == 2
    assert main(["sample", str(run), "--out", str(tmp_path / "s.npz")]) == 2
    err = capsys.readouterr().err
    assert "refusing to overwrite" in err and "translates AtoB, not BtoA" in err and "translate" in err

    cyc = tmp_path / "cyc"
    assert main(["train", "cyclegan-edges2fashion", "--data", str(unpaired_dir), "--out", str(cyc), "--steps", "2",
                 "--no-progress", "--set", "model.width_g=4", "--set", "model.width_d=4", "--set", "model.n_blocks=1",
                 "--set", "train.batch_size=4", "--set", "train.sample_grid=2"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(cyc), "--json", str(tmp_path / "c.json")]) == 0  # unpaired test: cycle, identity
    c = json.loads((tmp_path / "c.json").read_text())
    assert set(c) >= {"cycle", "identity"} and "l1" not in c and 0 <= c["cycle"]["cycle_A"] <= 1
    assert main(["evaluate", str(cyc), "--metrics", "l1"]) == 2  # no test pairs
    assert "unpaired test split" in capsys.readouterr().err
    assert main(["translate", str(cyc), "--input", str(unpaired_dir / "testB"), "--out", str(tmp_path / "ba"),
                 "--direction", "BtoA"]) == 0
    assert sorted(p.name for p in (tmp_path / "ba").iterdir())[0] == "000.png"


def _digits_from(aligned_dir) -> np.ndarray:
    files = sorted((aligned_dir / "test").glob("*.png"))
    return np.stack([np.asarray(Image.open(f))[:, :32, None] for f in files])


def test_dry_run_prints_the_patchgan_receptive_field(aligned_dir, capsys):
    assert main(["train", "pix2pix-edges2fashion", "--data", str(aligned_dir), "--dry-run",
                 "--set", "model.patch_layers=3"]) == 0
    out = capsys.readouterr().out
    assert "receptive field 70x70" in out and "output grid 2x2 logits on 32x32" in out and "5 levels" in out


def test_a_noise_gan_on_translation_data_is_refused(aligned_dir, tmp_path, capsys):
    code = main(["train", "dcgan-mnist", "--data", str(aligned_dir), "--out", str(tmp_path / "r"), "--steps", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "translation" in err and not (tmp_path / "r").exists()


@pytest.mark.parametrize("preset,fixture", [("pix2pix-folder", "aligned_dir"), ("cyclegan-folder", "unpaired_dir"),
                                            ("dcgan-folder", "cifar_dir")])
def test_the_presets_for_your_own_data_train_at_the_images_own_size(preset, fixture, request, tmp_path, capsys):
    data = request.getfixturevalue(fixture)
    run = tmp_path / "r"
    small = ["--set", "model.width_g=4", "--set", "model.width_d=4", "--set", "model.n_blocks=1", "--set",
             "train.batch_size=4", "--set", "train.sample_every=1000", "--set", "train.checkpoint_every=1000"]
    assert main(["train", preset, "--data", str(data), "--out", str(run), "--steps", "2", "--no-progress",
                 *small]) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["data"]["image_size"] == 0 and cfg["data"]["crop_size"] == 0
    shape = safe_load(latest_checkpoint(run))["shape"]
    sides = [list(s[1:]) for s in shape] if isinstance(shape[0], (list, tuple)) else [list(shape[1:])]
    assert all(s == [32, 32] for s in sides), shape  # the images' own 32x32: nothing scaled up
    if preset == "pix2pix-folder":
        assert cfg["data"]["direction"] == "AtoB"  # the input on the left
    assert "warning: data.image_size" not in capsys.readouterr().err


@pytest.mark.parametrize("preset,layout", [("pix2pix-folder", ("train", "test")),
                                           ("cyclegan-folder", ("trainA", "trainB", "testA", "testB"))])
def test_a_translation_set_of_one_image_trains_and_previews(preset, layout, tmp_path, digits):
    """A test split of one image (or one pair) gives a one-row preview, not a traceback."""
    a = digits32(digits, 1)[0]
    for sub in layout:
        (tmp_path / "d" / sub).mkdir(parents=True)
        img = np.concatenate([a, 255 - a], 1) if preset.startswith("pix2pix") else a
        save_png(img, tmp_path / "d" / sub / "0.png")
    run = tmp_path / "r"
    sets = ["model.width_g=4", "model.width_d=4", "model.n_blocks=1", "train.batch_size=1"]
    assert main(["train", preset, "--data", str(tmp_path / "d"), "--out", str(run), "--steps", "2", "--no-progress",
                 *[x for s in sets for x in ("--set", s)]]) == 0
    with Image.open(run / "samples" / "step-00000002.png") as im:
        assert im.size[0] > 3 * 32 and im.size[1] >= 32
