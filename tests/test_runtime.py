"""What the loop takes from the machine: precision=auto, the thread policy under load, torch.compile, and the
tutorial's joint DCGAN update against a hand-written two-tape step."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time

import pytest

import torch
import torch.nn.functional as F

from counterfeit import config, runtime
from counterfeit.checkpoint import safe_load
from counterfeit.cli.__main__ import main
from counterfeit.data import load_data, to_float
from counterfeit.data.sampler import Batches
from counterfeit.recipes import build_recipe
from counterfeit.loop import train
from conftest import tiny_overrides


def _tiny(data, extra=(), steps=3):
    return config.load_config("gan2014-mnist", tiny_overrides(data, steps) + ["train.parzen_monitor=false", *extra])


def _tiny_conv(data, extra=(), steps=3):
    """The tutorial's DCGAN on 16-image batches: convolutional nets, which precision=auto may train in bf16."""
    return config.load_config("dcgan-tf-mnist", [f"data.name={data}", "data.split=train", "train.batch_size=16",
                                                 f"train.steps={steps}", "train.epochs=0", "train.threads=1",
                                                 "train.parzen_monitor=false", "train.checkpoint_every=3",
                                                 "train.sample_every=3", *extra])


# ---------------------------------------------------------------------------------------------- precision


def test_the_real_capability_query_agrees_with_the_cpu_flags():
    flags = runtime.cpu_flags()
    assert flags, "no CPU flags read from /proc/cpuinfo"
    ok, why = runtime.native_bf16(torch.device("cpu"))
    assert ok == bool({"avx512_bf16", "amx_bf16"} & flags), (ok, why)
    precision, reason = runtime.resolve_precision("auto", torch.device("cpu"))
    assert precision == ("bf16" if ok else "fp32") and reason.startswith("auto: this CPU has")
    assert runtime.resolve_precision("fp32", torch.device("cpu")) == ("fp32", "as set")


def test_auto_trains_in_fp32_where_the_cpu_has_no_native_bf16_and_says_so(tmp_path, mnist_dir, monkeypatch, capsys):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    train(_tiny_conv(mnist_dir), tmp_path / "avx2", progress=True)
    recorded = json.loads((tmp_path / "avx2" / "config.json").read_text())["train"]
    assert (recorded["precision"], recorded["memory_format"]) == ("fp32", "contiguous")
    head = capsys.readouterr().err.splitlines()[0]
    assert "cpu, fp32 (auto: this CPU has neither AVX-512 BF16 nor AMX" in head, head


def test_auto_trains_in_bf16_where_the_cpu_has_it(tmp_path, mnist_dir, monkeypatch, capsys):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    res = train(_tiny_conv(mnist_dir), tmp_path / "amx", progress=True)
    recorded = json.loads((tmp_path / "amx" / "config.json").read_text())["train"]
    assert (recorded["precision"], recorded["memory_format"]) == ("bf16", "channels_last")
    assert "cpu, bf16 (auto: this CPU has AMX), channels_last" in capsys.readouterr().err
    # and it is bf16 arithmetic: the same run in fp32 ends elsewhere
    fp32 = train(_tiny_conv(mnist_dir, ["train.precision=fp32"]), tmp_path / "fp32", progress=False)
    a, b = (safe_load(r.checkpoint)["nets"]["G"] for r in (res, fp32))
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_auto_keeps_mlp_nets_and_unchecked_recipes_in_fp32_and_says_why(tmp_path, mnist_dir, monkeypatch, capsys):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    train(_tiny(mnist_dir), tmp_path / "mlp", progress=True)  # the 2014 GAN: in bf16 it collapsed
    assert json.loads((tmp_path / "mlp" / "config.json").read_text())["train"]["precision"] == "fp32"
    assert "cpu, fp32 (auto: MLP nets train in fp32 (in bf16 the 2014 GAN collapsed))" in capsys.readouterr().err
    vae = config.load_config("vae-conv-mnist", [f"data.name={mnist_dir}", "data.split=train", "train.steps=1",
                                                "train.epochs=0", "train.batch_size=16", "train.parzen_monitor=false"])
    train(vae, tmp_path / "vae", progress=True)
    assert "fp32 (auto: recipe 'vae' is not checked in bf16)" in capsys.readouterr().err


def test_a_run_resumes_where_auto_resolves_otherwise(tmp_path, mnist_dir, monkeypatch):
    """config.json records bf16 on a bf16 machine; resumed on one without, the run goes on in fp32."""
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    train(_tiny_conv(mnist_dir, steps=3), tmp_path / "run", progress=False)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["precision"] == "bf16"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    res = train(_tiny_conv(mnist_dir, steps=6), tmp_path / "run", resume=True, progress=False)
    assert res.step == 6 and json.loads((tmp_path / "run" / "config.json").read_text())["train"]["precision"] == "fp32"


# ---------------------------------------------------------------------------------------------- threads

_PEER = """
import sys, time
from counterfeit.runtime import ThreadPolicy
with ThreadPolicy(0, "peer") as t:
    print(t.threads, flush=True)
    time.sleep(60)
"""


def test_auto_threads_share_the_cores_among_live_trainings(tmp_path, monkeypatch):
    monkeypatch.setenv("COUNTERFEIT_RUNTIME_DIR", str(tmp_path / "live"))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runtime, "usable_cores", lambda: 2)
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    with runtime.ThreadPolicy(0, "me") as me:
        assert (me.peers, me.threads, torch.get_num_threads()) == (1, 2, 2)
        peer = subprocess.Popen([sys.executable, "-c", _PEER], env=env, stdout=subprocess.PIPE, text=True)
        try:
            peer.stdout.readline()  # registered
            assert me.refresh(force=True) and (me.peers, torch.get_num_threads()) == (2, 1)
            assert "1 threads (auto: 2 cores, 2 live trainings)" == me.describe()
        finally:
            peer.kill()  # SIGKILL: its registration stays behind, stale, and must not count
            peer.wait(timeout=10)
        assert len(list((tmp_path / "live").glob("*.json"))) == 2
        assert me.refresh(force=True) and (me.peers, torch.get_num_threads()) == (1, 2)
        assert [p.stem for p in (tmp_path / "live").glob("*.json")] == [str(os.getpid())]
    assert not list((tmp_path / "live").glob("*.json"))  # unregistered on exit


def test_a_set_thread_count_and_omp_num_threads_win_over_auto(tmp_path, monkeypatch):
    monkeypatch.setenv("COUNTERFEIT_RUNTIME_DIR", str(tmp_path / "live"))
    before = torch.get_num_threads()
    with runtime.ThreadPolicy(1) as t:
        assert torch.get_num_threads() == 1 and t.describe() == "1 threads (as set)" and not t.refresh(force=True)
    assert torch.get_num_threads() == before
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    with runtime.ThreadPolicy(0) as t:
        assert not t.auto and "OMP_NUM_THREADS=1" in t.describe()
    assert not (tmp_path / "live").exists() or not list((tmp_path / "live").glob("*.json"))


def test_a_registration_not_refreshed_for_a_minute_is_stale(tmp_path, monkeypatch):
    monkeypatch.setenv("COUNTERFEIT_RUNTIME_DIR", str(tmp_path))
    old = tmp_path / f"{os.getppid()}.json"  # a live pid (pytest's parent) whose run died without cleaning up
    old.write_text("{}")
    t = time.time() - 2 * runtime.PEER_STALE_S
    os.utime(old, (t, t))
    with runtime.ThreadPolicy(0) as me:
        assert me.live_peers() == 1 and not old.exists()


# ---------------------------------------------------------------------------------------------- compile


def test_compile_trains_a_few_steps_on_cpu_with_the_same_result(tmp_path, mnist_dir, monkeypatch):
    import torch._inductor.config as inductor

    monkeypatch.setattr(inductor, "fallback_random", True)  # eager's dropout masks (inductor draws its own otherwise)
    plain = train(_tiny(mnist_dir, ["train.precision=fp32"]), tmp_path / "plain", progress=False)
    comp = train(_tiny(mnist_dir, ["train.precision=fp32", "train.compile=true"]), tmp_path / "comp", progress=False)
    a, b = (safe_load(r.checkpoint)["nets"] for r in (plain, comp))
    assert a["G"].keys() == b["G"].keys()  # compiled in place: checkpoints keep the plain module's keys
    for net in ("G", "D"):  # fused kernels round differently, within float noise over 3 steps
        for k in a[net]:
            torch.testing.assert_close(b[net][k], a[net][k], rtol=1e-3, atol=1e-4)


# ---------------------------------------------------------------------------------------------- the tutorial's step


def test_dcgan_tf_mnist_is_the_tutorials_joint_update(tmp_path, mnist_dir):
    """One step of the preset equals a hand-written two-tape step: G(z) once, D on real and fake once (two calls, as
    the tutorial: a convolutional D is split in a joint step), D's gradient from D's loss and G's from G's loss over
    that one forward pass, then Adam on each."""
    sets = [f"data.name={mnist_dir}", "data.split=train", "train.batch_size=32", "train.steps=1", "train.epochs=0",
            "train.precision=fp32", "train.parzen_monitor=false", "train.threads=1"]
    cfg = config.load_config("dcgan-tf-mnist", sets)
    assert cfg.train.simultaneous and cfg.train.n_dis == 1
    res = train(cfg, tmp_path / "run", progress=False)
    got = safe_load(res.checkpoint)["nets"]

    torch.set_num_threads(1)
    data = load_data(str(mnist_dir), "train")
    torch.manual_seed(cfg.train.seed)
    r = build_recipe(cfg, data.shape, data)
    G, D = r.nets["G"], r.nets["D"]
    real = Batches(data.index_groups, 32, cfg.train.seed, torch.device("cpu"),
                   lambda k, v: v if v.dtype == torch.int64 else to_float(v, "pm1")).next()["x"]
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-4, betas=(0.9, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-4, betas=(0.9, 0.999))
    fake = G(torch.randn(32, 100))
    real_out, fake_out = D(real), D(fake)  # the tutorial's two D calls (the loop's order of dropout draws)
    ones, zeros = torch.ones_like(real_out), torch.zeros_like(fake_out)
    d_loss = F.binary_cross_entropy_with_logits(real_out, ones) + F.binary_cross_entropy_with_logits(fake_out, zeros)
    g_loss = F.binary_cross_entropy_with_logits(fake_out, ones)
    d_grads = torch.autograd.grad(d_loss, list(D.parameters()), retain_graph=True)  # disc_tape.gradient
    g_grads = torch.autograd.grad(g_loss, list(G.parameters()))  # gen_tape.gradient
    for p, g in [*zip(D.parameters(), d_grads), *zip(G.parameters(), g_grads)]:
        p.grad = g
    opt_g.step()
    opt_d.step()
    for name, net in (("G", G), ("D", D)):
        want = net.state_dict()
        for k in want:
            # Adam's first step is lr * g / (|g| + eps): about lr (1e-4) for every weight, so float noise in a gradient
            # near eps moves a weight by a share of lr; a different update moves thousands by ~lr
            torch.testing.assert_close(got[name][k], want[k], rtol=0, atol=1e-5)


def test_channels_last_trains_the_same_nets_and_resumes(tmp_path, mnist_dir):
    sets = [f"data.name={mnist_dir}", "data.split=train", "train.batch_size=16", "train.epochs=0", "train.threads=1",
            "train.precision=fp32", "train.parzen_monitor=false", "train.checkpoint_every=2", "train.sample_every=2",
            "train.memory_format=contiguous"]
    # Radford's nets (no dropout: a channels_last mask is drawn in another element order, another valid draw)
    sets += ["model.width_g=16", "model.width_d=16"]
    plain = train(config.load_config("dcgan-mnist", sets + ["train.steps=4"]), tmp_path / "plain", progress=False)
    cl = config.load_config("dcgan-mnist", sets + ["train.steps=2", "train.memory_format=channels_last"])
    train(cl, tmp_path / "cl", progress=False)
    cl.train.steps = 4
    res = train(cl, tmp_path / "cl", resume=True, progress=False)
    a, b = (safe_load(r.checkpoint)["nets"] for r in (plain, res))
    for net in ("G", "D"):  # other kernels, the same arithmetic: float noise amplified by Adam over 4 steps
        for k in a[net]:
            torch.testing.assert_close(b[net][k], a[net][k], rtol=0, atol=2e-4)


# ---------------------------------------------------------------------------------------------- allocator

# In a fresh process, one thread: the TensorFlow tutorial's DCGAN (counterfeit's nets, batch 256, fp32) trained by
# hand, one forward pass and both gradients per step; the minor page faults of two steps after three. glibc's own
# thresholds hand the step's big freed blocks back to the kernel, so each step faulted 21,365-46,914 pages in again
# (four runs while writing this test: 83-183 MiB that the kernel zeroes); with keep_freed_memory(), 0-0.5.
_ALLOC_PROBE = r"""
import json, resource, sys
import torch
import torch.nn.functional as F
from counterfeit.nets.dcgan import TFDiscriminator, TFGenerator
from counterfeit.runtime import keep_freed_memory
said = keep_freed_memory()
if sys.argv[1:] == ["say"]:
    print(json.dumps({"said": said}))
    sys.exit()
torch.manual_seed(0)
G, D = TFGenerator(), TFDiscriminator()
opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-4), torch.optim.Adam(D.parameters(), 1e-4)
x = torch.rand(256, 1, 28, 28) * 2 - 1
def step():
    fake = G(torch.randn(256, 100))
    real_out, fake_out = D(x), D(fake)
    ld = F.softplus(-real_out).mean() + F.softplus(fake_out).mean()
    lg = F.softplus(-fake_out).mean()
    opt_d.zero_grad(set_to_none=True); opt_g.zero_grad(set_to_none=True)
    ld.backward(inputs=list(D.parameters()), retain_graph=True); lg.backward(inputs=list(G.parameters()))
    opt_d.step(); opt_g.step()
for _ in range(3):  # warm-up: Adam's state, and the heap grows to the step's high-water mark
    step()
faults = []
for _ in range(5):  # the median of five: the odd step that still grows the heap is not the steady state
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    step()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
print(json.dumps({"said": said, "faults_per_step": sorted(faults)[2], "faults": faults}))
"""


def _probe(*args, **env) -> dict:
    e = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "COUNTERFEIT_MALLOC"}
    out = subprocess.run([sys.executable, "-c", _ALLOC_PROBE, *args], env={**e, "OMP_NUM_THREADS": "1", **env},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_keep_freed_memory_stops_each_step_faulting_its_memory_in_again():
    page = os.sysconf("SC_PAGE_SIZE")
    kept, system = _probe(), _probe(COUNTERFEIT_MALLOC="system")
    assert kept["said"].startswith("glibc ") and kept["said"].endswith("malloc keeps freed memory"), kept
    assert system["said"] == "system malloc (COUNTERFEIT_MALLOC=system)", system
    mib = lambda r: r["faults_per_step"] * page / 2**20  # noqa: E731
    assert mib(system) > 20, system  # glibc's default: tens of MiB of fresh pages every step
    assert mib(kept) < mib(system) / 10, (kept, system)  # kept: the freed blocks reused
    # the environment's own glibc settings win, and counterfeit says so
    assert _probe("say", MALLOC_TRIM_THRESHOLD_="131072")["said"] == "glibc malloc as the environment sets it"
    assert _probe("say", GLIBC_TUNABLES="glibc.malloc.trim_threshold=131072")["said"] == \
        "glibc malloc as the environment sets it"
    assert _probe("say", LD_PRELOAD="libjemalloc.so.2")["said"].startswith("preloaded allocator")


def test_the_run_head_says_what_the_allocator_does(tmp_path, mnist_dir, capsys):
    train(_tiny(mnist_dir, steps=1), tmp_path / "run", progress=True)
    head = capsys.readouterr().err.splitlines()[0]
    assert head.endswith(runtime.keep_freed_memory()), head


@pytest.mark.parametrize("env,value", [("ATEN_CPU_CAPABILITY", "avx2"), ("ONEDNN_MAX_CPU_ISA", "AVX2"),
                                       ("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")])
def test_auto_takes_fp32_where_the_environment_holds_torch_below_native_bf16(monkeypatch, env, value, capsys):
    """The CPU has AVX-512 BF16, but torch or oneDNN were told to stay below it: bf16 would be emulated."""
    from counterfeit.runtime import native_bf16

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        monkeypatch.delenv(k, raising=False)
    assert native_bf16(torch.device("cpu"))[0] is True
    monkeypatch.setenv(env, value)
    ok, why = native_bf16(torch.device("cpu"))
    assert not ok and f"{env}={value}" in why
    assert main(["train", "dcgan-mnist", "--data", "embedded", "--dry-run"]) == 0
    assert f"train.precision auto -> fp32 (auto: this CPU has AVX-512 BF16, but {env}={value}" in \
        capsys.readouterr().err
