"""Benchmark: training-step speed of the seeds' models against plain eager PyTorch and the TensorFlow tutorial's
own code, as shares of the machine's measured matmul peak, in fp32 / bf16 / torch.compile; and two trainings at
once on the cores (issue 16).

    python -m bench.speed [--rounds 2] [--tf-venv .bench-venv/tf] [--no-tf] [--only dcgan,gan2014,curves,profile,load]
    python -m bench.speed --only gemm --no-tf   # the ceiling the 2014 GAN's matmul shapes put on its step
    python -m bench.speed --only onednn         # the DCGAN step per oneDNN primitive, torch against TensorFlow
    python -m bench.speed --only conv_kernels --no-tf   # its big convolutions alone, per pass, dtype and layout
    python -m bench.speed --only dcgan_ceiling  # TensorFlow's step against the oneDNN work in torch's
    python -m bench.speed --only malloc         # glibc's malloc as it comes against counterfeit's setting

Rows, all measured in this one run, interleaved by round (the machine is shared: compare ratios, not absolutes):
  peak        GFLOP/s, fp32 and (where the CPU has it natively) bf16: the best of three big kernels (kernel_peaks);
  dcgan       the tutorial's DCGAN (batch 256, Dense-BN-ConvT 5x5 G, Conv-Dropout D, Adam 1e-4, one forward pass
              and both gradients): the tutorial's TensorFlow step (in its own virtual environment, made here with
              `pip install tensorflow-cpu==2.21.0` unless --tf-venv points at one), a hand-written eager PyTorch
              step on the same nets with each lever alone (the alternating update, channels_last, fused Adam,
              torch.compile, bf16 autocast, split_d: D(x) and D(G(z)) as two passes) and `counterfeit train
              dcgan-tf-mnist` itself (the whole loop: data, logging, hooks), fp32 / bf16 (auto: with channels_last)
              / bf16 contiguous / compile;
  gan2014     the 2014 paper's MLP G and maxout D (batch 100, SGD + momentum, simultaneous update) the same ways,
              and eager with the maxout as it was before 2026-12-06 (amax; its backward masks, counts and divides)
              and with every Linear's matmuls through oneDNN instead of MKL's sgemm (onednn_linear, fp32);
  curves      the same seed in bf16 and fp32, step by step (dcgan), and the 2014 GAN with this loop against
              torch's own dropout, beside a second seed: the mathematics is the same where the gap is a seed's gap;
  profile     the 2014 GAN's fp32 step under torch.profiler: its matmuls' share of the step and of the matmul peak;
  load        the README's main job (`counterfeit train quickstart`, shortened) alone, then two at once: with the
              thread policy (train.threads auto) and with each forced to all cores (the old default);
  malloc      (--only malloc) each step in a fresh process with glibc's malloc as it comes and as counterfeit's
              loop sets it (runtime.keep_freed_memory: freed memory kept for reuse, not handed back to the kernel),
              with minor page faults per step; TensorFlow's step with and without the same glibc setting.
Every in-process row runs with the allocator as counterfeit's loop sets it.
FLOPs per step are torch's flop counter over one forward + backward. Results: bench/results/speed.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
from bench.harness import machine, with_root  # noqa: E402

from counterfeit import config, runtime  # noqa: E402
from counterfeit.nets.layers import Maxout  # noqa: E402
from counterfeit.recipes import build_recipe  # noqa: E402
from counterfeit.runtime import keep_freed_memory, native_bf16  # noqa: E402

TF_REQ = "tensorflow-cpu==2.21.0"


# ---------------------------------------------------------------------------------------------- peak


def _gflops(fn, flops: float, seconds: float) -> float:
    for _ in range(3):
        fn()
    reps, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        fn()
        reps += 1
    return flops * reps / (time.perf_counter() - t) / 1e9


def kernel_peaks(seconds: float = 3.0, bf16: bool = True) -> dict:
    """The machine's peak, per dtype, as the best of three big kernels, each timed alone: torch's 2048x2048 matmul
    (MKL's sgemm in fp32, oneDNN in bf16), the same matmul through oneDNN (torch.ops.mkldnn._linear_pointwise, the
    op inductor uses, weight pre-packed) and the tutorial G's largest layer as oneDNN runs it (transposed conv
    256 -> 128 channels, 5x5, 7x7 maps, batch 256; channels_last in bf16). One library's sgemm is not the machine:
    on an AMD EPYC (Zen 4) MKL's sgemm ran at 162-183 GFLOP/s where oneDNN reached 216-224 in a matmul and 278-282
    in that convolution (bench/results/speed-avx512bf16.json), so shares of MKL's figure overstated every step there
    (TensorFlow's fp32 step had read as 120% of it)."""
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    x, w = torch.randn(256, 256, 7, 7), torch.randn(256, 128, 5, 5)
    conv_flops = 2 * 256 * 256 * 128 * 7 * 7 * 5 * 5
    out = {}
    for dt in (torch.float32, torch.bfloat16) if bf16 else (torch.float32,):
        name = "fp32" if dt == torch.float32 else "bf16"
        ad, bd = a.to(dt), b.to(dt)
        xd, wd = x.to(dt), w.to(dt)
        if dt == torch.bfloat16:
            xd, wd = xd.contiguous(memory_format=torch.channels_last), wd.contiguous(memory_format=torch.channels_last)
        k = {"matmul 2048 (torch.mm)": _gflops(lambda: ad @ bd, 2 * n**3, seconds)}
        try:
            packed = torch.ops.mkldnn._reorder_linear_weight(bd.t().contiguous(), n)
            lp = torch.ops.mkldnn._linear_pointwise
            k["matmul 2048 (oneDNN)"] = _gflops(lambda: lp(ad, packed, None, "none", [], ""), 2 * n**3, seconds)
        except (AttributeError, RuntimeError):  # a torch built without oneDNN
            pass
        k["conv_transpose 5x5 256->128, 7x7, batch 256 (oneDNN)"] = _gflops(
            lambda: F.conv_transpose2d(xd, wd, padding=2), conv_flops, seconds)
        out[name] = {"kernels": {kk: round(v, 1) for kk, v in k.items()}, "peak": round(max(k.values()), 1)}
    return out


# ---------------------------------------------------------------------------------------------- eager steps


def _nets(preset: str, shape):
    cfg = config.load_config(preset, ["train.precision=fp32"])
    torch.manual_seed(0)
    r = build_recipe(cfg, shape, None)
    return cfg, r.nets["G"], r.nets["D"]


class OneDNNLinear(torch.autograd.Function):
    """y = x W^T + b in fp32 through oneDNN's matmul (torch.ops.mkldnn._linear_pointwise, the op inductor uses),
    where torch.mm takes MKL's sgemm: the forward and the input gradient in oneDNN, the weight gradient in torch.mm
    (oneDNN was slower for it with transposed operands). A bench lever only (onednn_linear), not in the package."""

    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        return torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        dx = torch.ops.mkldnn._linear_pointwise(g, w.t(), None, "none", [], "") if ctx.needs_input_grad[0] else None
        return dx, g.t() @ x, g.sum(0) if ctx.has_bias else None


def eager_step(model: str, levers: set[str], batch_x: torch.Tensor):
    """A hand-written training step on counterfeit's nets for the preset, with the given levers; returns step()."""
    preset = "dcgan-tf-mnist" if model == "dcgan" else "gan2014-mnist"
    cfg, G, D = _nets(preset, tuple(batch_x.shape[1:]))
    n, z_dim = batch_x.shape[0], cfg.model.z_dim
    if "amax_maxout" in levers:  # the maxout as it was before 2026-12-06: amax, whose backward masks, counts, divides
        for m in D.modules():
            if isinstance(m, Maxout):
                m.forward = lambda x, m=m: m.linear(x).view(x.shape[0], m.units, m.pieces).amax(dim=-1)
    if "onednn_linear" in levers:  # every Linear's matmuls through oneDNN instead of MKL's sgemm (fp32)
        for m in [*G.modules(), *D.modules()]:
            if isinstance(m, torch.nn.Linear):
                m.forward = lambda x, m=m: OneDNNLinear.apply(x, m.weight, m.bias)
    if "channels_last" in levers:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
        batch_x = batch_x.contiguous(memory_format=torch.channels_last)
    if model == "dcgan":
        kw = {"fused": True} if "fused_adam" in levers else {}
        opt_g = torch.optim.Adam(G.parameters(), 1e-4, betas=(0.9, 0.999), **kw)
        opt_d = torch.optim.Adam(D.parameters(), 1e-4, betas=(0.9, 0.999), **kw)
    else:
        o = cfg.optim
        opt_g = torch.optim.SGD(G.parameters(), o.lr_g, momentum=o.momentum)
        opt_d = torch.optim.SGD(D.parameters(), o.lr_d, momentum=o.momentum)
    if "compile" in levers:
        from torch._functorch import config as functorch_config

        functorch_config.donated_buffer = False  # the joint step runs backward twice over one graph, as the loop
        G.compile()
        D.compile()
    bf16 = "bf16" in levers
    d_scale = cfg.loss.d_scale
    z = lambda: torch.randn(n, z_dim) if cfg.model.noise == "normal" else (torch.rand(n, z_dim) * 2 - 1) * 3**0.5  # noqa: E731

    def d_loss(real_out, fake_out):
        return d_scale * (F.softplus(-real_out).mean() + F.softplus(fake_out).mean())

    def joint():
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            fake = G(z())
            if "split_d" in levers:  # D(x) and D(G(z)) apart: G's backward then skips the real half's input grads
                real_out, fake_out = D(batch_x).float(), D(fake).float()
            else:  # one pass, as counterfeit's loop (recipes/base.py _d_pass)
                out = D(torch.cat([batch_x, fake])).float()
                real_out, fake_out = out[:n], out[n:]
        ld, lg = d_loss(real_out, fake_out), F.softplus(-fake_out).mean()
        opt_d.zero_grad(set_to_none=True)
        opt_g.zero_grad(set_to_none=True)
        ld.backward(inputs=list(D.parameters()), retain_graph=True)
        lg.backward(inputs=list(G.parameters()))
        opt_d.step()
        opt_g.step()
        return ld.detach(), lg.detach()

    def alternating():
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            with torch.no_grad():
                fake = G(z())
            out = D(torch.cat([batch_x, fake])).float()  # no BatchNorm in either D: one pass is two
        ld = d_loss(out[:n], out[n:])
        opt_d.zero_grad(set_to_none=True)
        ld.backward()
        opt_d.step()
        D.requires_grad_(False)
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            lg = F.softplus(-D(G(z())).float()).mean()
        opt_g.zero_grad(set_to_none=True)
        lg.backward()
        opt_g.step()
        D.requires_grad_(True)
        return ld.detach(), lg.detach()

    return alternating if "alternating" in levers else joint


def time_steps(step, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        out = step()
    float(out[0])
    return (time.perf_counter() - t) / steps


def step_flops(model: str, batch_x: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    step = eager_step(model, set(), batch_x)
    with FlopCounterMode(display=False) as fc:
        step()
    return float(fc.get_total_flops())


def gan2014_profile(peak: dict, steps: int = 50) -> dict:  # peak: kernel_peaks()["fp32"]
    """torch.profiler over the eager fp32 2014-GAN step: the matmuls' (mm, addmm) share of the step and their own
    GFLOP/s as a share of a 2048x2048 matmul's, measured right after."""
    from torch.profiler import ProfilerActivity, profile

    x = mnist_batch(100)
    flops = step_flops("gan2014", x)
    step = eager_step("gan2014", set(), x)
    for _ in range(10):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    ev = prof.key_averages()
    mm = sum(e.self_cpu_time_total for e in ev if e.key in ("aten::mm", "aten::addmm")) / 1e6 / steps
    total = sum(e.self_cpu_time_total for e in ev) / 1e6 / steps
    return {"flops_per_step": flops, "profiled_s_per_step": round(total, 5), "matmul_s_per_step": round(mm, 5),
            "matmul_share_of_step": round(mm / total, 3), "matmul_gflops": round(flops / mm / 1e9, 1),
            "fp32_peak_gflops": peak["peak"], "fp32_kernels": peak["kernels"],
            "matmuls_share_of_fp32_peak": round(flops / mm / 1e9 / peak["peak"], 3)}


def gemm_ceiling(peak: dict, reps: int = 200) -> dict:  # peak: kernel_peaks()["fp32"]
    """The most the 2014 GAN's fp32 step could reach: every matmul the eager step makes (shapes recorded by the
    profiler, transposed operands as the step passes them), replayed alone `reps` times each, with no other work in
    between. Their FLOPs over their summed time, as a share of the fp32 peak (kernel_peaks), bounds the whole step's
    share: the step also does the maxout, dropout, activations and SGD updates, which add time and no matmul FLOPs."""
    from torch.profiler import ProfilerActivity, profile

    x = mnist_batch(100)
    step = eager_step("gan2014", set(), x)
    for _ in range(10):
        step()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        step()
    calls = [(e.name, [list(s) for s in e.input_shapes if s]) for e in prof.events()
             if e.name in ("aten::mm", "aten::addmm")]
    rows, flops_all, time_all = {}, 0.0, 0.0
    for name, shapes in calls:
        a, b = shapes[-2], shapes[-1]  # addmm(bias, a, b) / mm(a, b): (m, k) @ (k, n)
        m, k, n = a[0], a[1], b[1]
        best = {}
        for layout in ("nn", "tn", "nt"):  # which operand the step hands over transposed is not recorded: take
            A = torch.randn(k, m).t() if layout[0] == "t" else torch.randn(m, k)  # the fastest, an upper bound
            B = torch.randn(n, k).t() if layout[1] == "t" else torch.randn(k, n)
            for _ in range(10):
                A @ B
            t = time.perf_counter()
            for _ in range(reps):
                A @ B
            best[layout] = (time.perf_counter() - t) / reps
        s = min(best.values())
        key = f"{m}x{k} @ {k}x{n}"
        r = rows.setdefault(key, {"calls": 0, "gflops": round(2 * m * k * n / s / 1e9, 1)})
        r["calls"] += 1
        flops_all += 2 * m * k * n
        time_all += s
    return {"matmul_calls_per_step": len(calls), "shapes": rows, "flops": flops_all,
            "replayed_s": round(time_all, 5), "replayed_gflops": round(flops_all / time_all / 1e9, 1),
            "fp32_peak_gflops": peak["peak"], "fp32_kernels": peak["kernels"],
            "ceiling_share_of_fp32_peak": round(flops_all / time_all / 1e9 / peak["peak"], 3)}


def loop_profile(preset: str, sets: list[str], steps: int = 6, top: int = 10) -> dict:
    """torch.profiler over `counterfeit train PRESET` (after a warm-up run): each of the top operators' share of the
    profiled self CPU time, and the time per step."""
    from torch.profiler import ProfilerActivity, profile

    counterfeit_rows(preset, sets, 3)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        counterfeit_rows(preset, sets, steps)
    ev = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in ev)
    return {"preset": preset, "sets": sets, "steps": steps, "profiled_s_per_step": round(total / 1e6 / steps, 4),
            "share_of_self_cpu_time": {e.key: round(e.self_cpu_time_total / total, 3) for e in ev[:top]}}


# ---------------------------------------------------------------------------------------------- counterfeit's loop


def counterfeit_rows(preset: str, sets: list[str], steps: int, log_every: int = 1) -> list[dict]:
    """The loss rows of metrics.jsonl from a short `counterfeit train PRESET` run on real data."""
    from counterfeit.loop import train

    cfg = config.load_config(preset, [f"train.steps={steps}", "train.epochs=0", f"train.log_every={log_every}",
                                      "train.sample_every=100000", "train.checkpoint_every=100000",
                                      "train.parzen_monitor=false", *sets])
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["COUNTERFEIT_NO_TENSORBOARD"] = "1"
        train(cfg, Path(tmp) / "run", progress=False)
        rows = [json.loads(line) for line in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "loss/D/total" in r]


def counterfeit_step(preset: str, sets: list[str], steps: int, warmup: int) -> float:
    """Seconds per step of `counterfeit train PRESET`: the loop's own clock between two metrics rows (every hook
    inside, the preview and checkpoint at the end outside)."""
    t = {r["step"]: r["time"] for r in counterfeit_rows(preset, sets, warmup + steps, log_every=warmup)}
    return (t[warmup + steps] - t[warmup]) / steps


def curve_check(preset: str, a: list[str], b: list[str], steps: int, torch_dropout_b: bool = False) -> dict:
    """Two runs from one seed: per-step |difference| of the D and G losses, and each run's means over the second
    half, beside a second seed of run a (how far two equally valid runs drift apart)."""
    from counterfeit.nets import layers

    ra = counterfeit_rows(preset, a, steps)
    if torch_dropout_b:  # the same nets with torch's own dropout (the loop before issue 16)
        fwd = layers.Dropout.forward
        layers.Dropout.forward = lambda self, x: F.dropout(x, self.p, self.training)
        try:
            rb = counterfeit_rows(preset, b, steps)
        finally:
            layers.Dropout.forward = fwd
    else:
        rb = counterfeit_rows(preset, b, steps)
    rs = counterfeit_rows(preset, a + ["train.seed=1"], steps)
    out = {"a": a, "b": b + (["torch F.dropout"] if torch_dropout_b else []), "steps": steps}
    for k in ("loss/D/total", "loss/G/total"):
        d = np.abs(np.array([r[k] for r in ra]) - np.array([r[k] for r in rb]))
        half = lambda rows: round(float(np.mean([r[k] for r in rows[steps // 2:]])), 4)  # noqa: E731
        out[k] = {"max_abs_diff_per_step": round(float(d.max()), 4), "mean_abs_diff_per_step": round(float(d.mean()), 4),
                  "second_half_mean_a": half(ra), "second_half_mean_b": half(rb), "second_half_mean_a_seed1": half(rs)}
    return out


# ---------------------------------------------------------------------------------------------- TensorFlow


def tf_python(venv: Path) -> Path:
    py = venv / "bin" / "python"
    if not py.is_file():
        print(f"making {venv} with {TF_REQ} (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    if subprocess.run([str(py), "-c", "import tensorflow"], capture_output=True).returncode:
        subprocess.run([str(py), "-m", "pip", "install", "-q", TF_REQ], check=True)
    return py


def tf_images() -> Path:
    """Eight batches of MNIST for the TensorFlow peer: (2048, 28, 28, 1) float32 in [-1, 1], in a temporary .npy."""
    images = Path(tempfile.mkdtemp()) / "mnist.npy"
    np.save(images, mnist_batch(256 * 8).permute(0, 2, 3, 1).numpy())
    return images


def tf_step(py: Path, images: Path, steps: int, warmup: int, env: dict | None = None) -> dict:
    out = subprocess.run([str(py), str(HERE / "peers" / "tf_dcgan.py"), str(images), "--steps", str(steps),
                          "--warmup", str(warmup)], capture_output=True, text=True, timeout=1800,
                         env={**os.environ, **(env or {})})
    if out.returncode:
        raise RuntimeError(f"TensorFlow step failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------- oneDNN breakdown


def onednn_table(log: str, steps: int) -> dict:
    """Sum a ONEDNN_VERBOSE log's primitive executions over its last `steps` steps (the log holds `steps` warm-up
    steps first, which carry the primitives' creation): per (kind, propagation, shape) the time, the FLOPs (for
    convolutions and matmuls) and GFLOP/s. The verbose timer brackets each call, so the sums are for comparing
    layers and libraries with each other, not with a step timed without it."""
    import re

    ex = [f.split(",") for f in log.splitlines() if f.startswith("onednn_verbose") and ",exec," in f]
    ex = ex[len(ex) // 2:]  # the log holds warm-up steps, then as many measured steps
    rows: dict[str, list] = {}
    for f in ex:
        kind, prop, desc, ms = f[5], f[7], f[-2], float(f[-1])
        flops = 0.0
        m = re.search(r"mb(\d+)_(?:g\d+)?ic(\d+)oc(\d+)_ih(\d+)oh(\d+)kh(\d+)\D.*_iw(\d+)ow(\d+)kw(\d+)", desc)
        if m and kind in ("convolution", "deconvolution"):
            mb, ic, oc, ih, oh, kh, iw, ow, kw = map(int, m.groups())
            flops = 2.0 * mb * ic * oc * kh * kw * (ih * iw if kind == "deconvolution" else oh * ow)
        m = re.search(r"(\d+)x(\d+):(\d+)x(\d+)", desc)
        if m and kind in ("gemm_api", "matmul"):
            a, k, _, n = map(int, m.groups())
            flops = 2.0 * a * k * n
        dt = re.findall(r"(?:src|wei|dst)[_:](\w+?)[:_]", f[8])
        key = f"{kind} {prop} {'/'.join(dict.fromkeys(dt))} {desc} [{f[6]}]"
        r = rows.setdefault(key, [0, 0.0, 0.0])
        r[0] += 1
        r[1] += ms
        r[2] += flops
    total_ms = sum(r[1] for r in rows.values())
    total_fl = sum(r[2] for r in rows.values())
    top = sorted(rows.items(), key=lambda kv: -kv[1][1])[:14]
    return {"ms_per_step": round(total_ms / steps, 1), "gflop_per_step": round(total_fl / steps / 1e9, 2),
            "gflops": round(total_fl / total_ms / 1e6, 1) if total_ms else None,
            "top": {k: {"calls_per_step": c / steps, "ms_per_step": round(ms / steps, 2),
                        "gflops": round(fl / ms / 1e6, 1) if fl else None} for k, (c, ms, fl) in top}}


def conv_kernels(reps: int = 10) -> dict:
    """The tutorial DCGAN's three big convolutions timed alone, forward, backward_data and backward_weights each
    (torch.ops.aten.convolution / convolution_backward), in fp32 and bf16, contiguous and channels_last."""
    cases = {  # name: input shape, weight shape, stride, padding, transposed, output padding
        "D conv2 64->128 s2 (batch 512)": ((512, 64, 14, 14), (128, 64, 5, 5), 2, 2, False, 0),
        "G deconv2 128->64 s2 (batch 256)": ((256, 128, 7, 7), (128, 64, 5, 5), 2, 2, True, 1),
        "G deconv1 256->128 s1 (batch 256)": ((256, 256, 7, 7), (256, 128, 5, 5), 1, 2, True, 0)}
    out = {}
    for name, (xs, ws, st, pd, tr, op) in cases.items():
        args = ([st, st], [pd, pd], [1, 1], tr, [op, op], 1)
        for dt in (torch.float32, torch.bfloat16):
            for fmt in (torch.contiguous_format, torch.channels_last):
                x = torch.randn(xs).to(dt).contiguous(memory_format=fmt)
                w = torch.randn(ws).to(dt).contiguous(memory_format=fmt)
                g = torch.randn_like(torch.ops.aten.convolution(x, w, None, *args))
                k = ws[2] * ws[3]  # a transposed conv's FLOPs: its input's pixels times its output channels
                flops = 2.0 * k * (x.numel() * g.shape[1] if tr else g.numel() * x.shape[1])
                fns = {"fwd": lambda: torch.ops.aten.convolution(x, w, None, *args),
                       "bwd_data": lambda: torch.ops.aten.convolution_backward(g, x, w, None, *args,
                                                                               [True, False, False]),
                       "bwd_weight": lambda: torch.ops.aten.convolution_backward(g, x, w, None, *args,
                                                                                 [False, True, False])}
                row = {}
                for part, fn in fns.items():
                    for _ in range(3):
                        fn()
                    t = time.perf_counter()
                    for _ in range(reps):
                        fn()
                    s = (time.perf_counter() - t) / reps
                    row[part] = {"ms": round(s * 1e3, 1), "gflops": round(flops / s / 1e9)}
                out[f"{name} {str(dt)[6:]} {'channels_last' if fmt == torch.channels_last else 'contiguous'}"] = row
    return out


def verbose_torch_step(levers: list[str], steps: int, keep_freed: bool) -> dict:
    """The eager tutorial-DCGAN step with `levers` in a fresh process under ONEDNN_VERBOSE (with the allocator as the
    loop sets it where keep_freed): onednn_table of its last `steps` steps."""
    code = ("import sys, torch; from bench import speed; %storch.set_num_threads(%d); "
            "step = speed.eager_step('dcgan', set(%r), speed.mnist_batch(256)); [step() for _ in range(%d)]"
            % ("speed.keep_freed_memory(); " if keep_freed else "", torch.get_num_threads(), levers, 2 * steps))
    env = {**os.environ, "ONEDNN_VERBOSE": "1", "PYTHONPATH": with_root(os.environ)}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                       text=True, timeout=900)
    if r.returncode:
        raise RuntimeError(f"verbose torch step failed: {r.stderr.strip().splitlines()[-1:]}")
    return onednn_table(r.stdout, steps)


def onednn_breakdown(levers: list[str], tf_py: Path | None, steps: int = 2) -> dict:
    """The tutorial DCGAN's step under ONEDNN_VERBOSE, in torch (the hand-written eager step with `levers`) and, if
    tf_py, in TensorFlow: where each library spends the step, convolution by convolution, and in which data types
    (this is how TensorFlow was seen to compute in fp32 throughout)."""
    env = {**os.environ, "ONEDNN_VERBOSE": "1"}
    out = {"torch " + ("+".join(levers) or "fp32"): verbose_torch_step(levers, steps, keep_freed=False)}
    if tf_py:
        r = subprocess.run([str(tf_py), str(HERE / "peers" / "tf_dcgan.py"), str(tf_images()), "--steps", str(steps),
                            "--warmup", str(steps)], env=env, capture_output=True, text=True, timeout=900)
        if r.returncode:
            raise RuntimeError(f"verbose TensorFlow step failed: {r.stderr.strip().splitlines()[-1:]}")
        out["tensorflow fp32"] = onednn_table(r.stdout + r.stderr, steps)
    return out


def dropout_masks_ms(reps: int = 10) -> float:
    """The tutorial D's dropout masks for one step as counterfeit's Dropout draws them (fp32 uniforms from torch's
    generator, channels_last as in bf16): two layers, each for D(x) and D(G(z)) (split_d), batch 256."""
    shapes = [(256, 64, 14, 14), (256, 128, 7, 7)] * 2
    xs = [torch.empty(s).contiguous(memory_format=torch.channels_last) for s in shapes]
    draw = lambda: [torch.rand_like(x) >= 0.3 for x in xs]  # noqa: E731
    draw()
    t = time.perf_counter()
    for _ in range(reps):
        draw()
    return (time.perf_counter() - t) / reps * 1e3


def dcgan_ceiling(rounds: int, tf, bf16: bool, steps: int = 4) -> dict:
    """How fast the tutorial DCGAN's step could be with oneDNN's kernels as they are: per round, TensorFlow's step
    timed (tf(), None: not measured), then the summed time of the oneDNN primitives of torch's step, fp32
    (split_d, as the loop) and bf16 (channels_last, split_d, as the loop's auto), and the dropout masks' draw alone.
    TensorFlow's step over the primitives' sum is the speedup of a step that did nothing outside oneDNN."""
    variants = {"fp32": ["split_d"]} | ({"bf16": ["bf16", "channels_last", "split_d"]} if bf16 else {})
    out = {"tensorflow_s_per_step": [], "masks_ms_per_step": [],
           **{f"onednn_ms_per_step {k}": [] for k in variants}}
    for rnd in range(rounds):
        if tf:
            out["tensorflow_s_per_step"].append(round(tf()["s_per_step"], 4))
        for k, levers in variants.items():
            out[f"onednn_ms_per_step {k}"].append(verbose_torch_step(levers, steps, keep_freed=True)["ms_per_step"])
        out["masks_ms_per_step"].append(round(dropout_masks_ms(), 1))
        print(f"  round {rnd + 1} ceiling: " + ", ".join(f"{k} {v[-1]}" for k, v in out.items() if v), flush=True)
    for k in variants if out["tensorflow_s_per_step"] else ():  # ratios within a round: the machine is shared
        kern, masks = out[f"onednn_ms_per_step {k}"], out["masks_ms_per_step"]
        out[f"ceiling {k} by round: tensorflow / oneDNN primitives"] = [
            round(1e3 * t / c, 2) for t, c in zip(out["tensorflow_s_per_step"], kern)]
        out[f"ceiling {k} by round: tensorflow / (oneDNN primitives + dropout masks)"] = [
            round(1e3 * t / (c + m), 2) for t, c, m in zip(out["tensorflow_s_per_step"], kern, masks)]
    return out


# ---------------------------------------------------------------------------------------------- under load


def quickstart_runs(n_runs: int, steps: int, threads: int | None) -> list[float]:
    """Wall seconds of training (the loop's clock) of n_runs `counterfeit train quickstart` started together."""
    with tempfile.TemporaryDirectory() as tmp:
        procs = []
        for i in range(n_runs):
            cmd = [sys.executable, "-m", "counterfeit", "train", "quickstart", "--steps", str(steps), "--no-progress",
                   "--out", f"{tmp}/run{i}"] + (["--set", f"train.threads={threads}"] if threads else [])
            procs.append(subprocess.Popen(cmd, env={**os.environ, "COUNTERFEIT_NO_TENSORBOARD": "1"},
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
        for p in procs:
            _, err = p.communicate(timeout=3600)
            if p.returncode:
                raise RuntimeError(f"quickstart failed: {err.strip()[-300:]}")
        return [json.loads((Path(tmp) / f"run{i}" / "metrics.jsonl").read_text().splitlines()[-1])["time"]
                for i in range(n_runs)]


# ---------------------------------------------------------------------------------------------- the allocator


MALLOC_CASES = {  # label: (kind, model or preset, levers or --set overrides, warm-up, timed steps)
    "eager dcgan fp32": ("eager", "dcgan", {"split_d"}, 3, 10),
    "eager dcgan bf16 channels_last": ("eager", "dcgan", {"bf16", "channels_last", "split_d"}, 3, 10),
    "counterfeit dcgan-tf-mnist fp32": ("cf", "dcgan-tf-mnist", ["train.precision=fp32"], 3, 10),
    "counterfeit dcgan-tf-mnist bf16 (auto)": ("cf", "dcgan-tf-mnist", ["train.precision=auto"], 3, 10),
    "counterfeit gan2014-mnist fp32": ("cf", "gan2014-mnist", ["train.precision=fp32"], 20, 150),
    "counterfeit quickstart": ("cf", "quickstart", [], 20, 100),
}


def malloc_child(label: str) -> dict:
    """One allocator row in this fresh process (the parent sets COUNTERFEIT_MALLOC): seconds per step, and for the
    eager rows the minor page faults per timed step (the counterfeit rows report none: their process's count would
    include the run's start)."""
    import resource

    kind, model, levers, warmup, steps = MALLOC_CASES[label]
    allocator = keep_freed_memory()
    faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt  # noqa: E731
    if kind == "eager":
        step = eager_step(model, levers, mnist_batch(256 if model == "dcgan" else 100))
        for _ in range(warmup):
            step()
        f0 = faults()
        s = time_steps(step, steps, 0)
        return {"s_per_step": s, "minflt_per_step": round((faults() - f0) / steps), "allocator": allocator}
    return {"s_per_step": counterfeit_step(model, levers, steps, warmup), "allocator": allocator}


def malloc_rows(rounds: int, labels: list[str], tf: tuple[Path, Path] | None, steps_tf: int) -> dict:
    """Each case in a fresh process with glibc's malloc as it comes (COUNTERFEIT_MALLOC=system) and as counterfeit
    sets it (runtime.keep_freed_memory), the two orders alternating by round; TensorFlow's step with and without
    the same setting (glibc's MALLOC_*_ variables) beside them."""
    out: dict = {}
    for rnd in range(rounds):
        for label in labels + (["tensorflow tutorial fp32"] if tf else []):
            for mode in (("system", "keep") if rnd % 2 == 0 else ("keep", "system")):
                if label.startswith("tensorflow"):  # glibc's variables for the values keep_freed_memory sets
                    env = {} if mode == "system" else {"MALLOC_TRIM_THRESHOLD_": str(runtime.KEEP_FREED),
                                                       "MALLOC_MMAP_THRESHOLD_": str(runtime.MMAP_ABOVE)}
                    r = {"s_per_step": tf_step(tf[0], tf[1], steps_tf, 3, env)["s_per_step"]}
                else:
                    cmd = [sys.executable, "-m", "bench.speed", "--malloc-child", label]
                    env = {**os.environ, "COUNTERFEIT_MALLOC": "system" if mode == "system" else "",
                           "COUNTERFEIT_NO_TENSORBOARD": "1", "PYTHONPATH": with_root(os.environ)}
                    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
                    if p.returncode:
                        raise RuntimeError(f"malloc row {label} failed: {p.stderr.strip()[-400:]}")
                    r = json.loads(p.stdout.strip().splitlines()[-1])
                row = out.setdefault(label, {}).setdefault(mode, {"s_per_step": []})
                row["s_per_step"].append(round(r["s_per_step"], 4))
                if "minflt_per_step" in r:
                    row.setdefault("minflt_per_step", []).append(r["minflt_per_step"])
                if "allocator" in r:
                    row["allocator"] = r["allocator"]
                print(f"  round {rnd + 1} {label} [{mode}]: {r['s_per_step'] * 1000:.1f} ms/step "
                      f"{r.get('minflt_per_step', '')}", flush=True)
    for row in out.values():  # < 1: keeping freed memory is faster
        row["time_ratio_keep_to_system_by_round"] = [round(a / b, 3) for a, b in
                                                     zip(row["keep"]["s_per_step"], row["system"]["s_per_step"])]
    return out


# ---------------------------------------------------------------------------------------------- main


def picked(label: str, rows: str) -> bool:
    """--rows: comma-separated substrings of the labels to run; =LABEL is that label exactly."""
    return any(label == k[1:] if k.startswith("=") else k in label for k in rows.split(","))


def mnist_batch(n: int) -> torch.Tensor:
    from counterfeit.data import load_data, to_float

    return to_float(load_data("mnist", "train").x[:n], "pm1")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--dcgan-steps", type=int, default=12)
    p.add_argument("--gan2014-steps", type=int, default=150)
    p.add_argument("--load-steps", type=int, default=600, help="quickstart steps per run in the load rows")
    p.add_argument("--tf-venv", default=str(ROOT / ".bench-venv" / "tf"))
    p.add_argument("--no-tf", action="store_true")
    p.add_argument("--curve-steps", type=int, default=100, help="steps of the bf16-vs-fp32 curve check (x10 for gan2014)")
    p.add_argument("--only", default="dcgan,gan2014,curves,profile,load")
    p.add_argument("--rows", default="", help="comma-separated substrings: run only the rows whose label has one "
                                              "(=LABEL: that label exactly)")
    p.add_argument("--result", default=str(HERE / "results" / "speed.json"))
    p.add_argument("--malloc-child", default="", help=argparse.SUPPRESS)  # one allocator row, in a fresh process
    args = p.parse_args(argv)
    os.environ.setdefault("COUNTERFEIT_DATA", str(ROOT.parent / "shared" / "datasets"))
    if args.malloc_child:
        print(json.dumps(malloc_child(args.malloc_child)))
        return 0
    # every in-process row with the allocator as counterfeit's loop sets it (it is per process, and the first
    # counterfeit row would set it for every row after it); the malloc rows measure that lever alone
    keep_freed_memory()
    only = set(args.only.split(","))
    cpu = torch.device("cpu")
    has_bf16 = native_bf16(cpu)[0]
    doc = {"about": __doc__.split("\n\n", 2)[2].strip(), "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"),
           "command": "python -m bench.speed " + " ".join(argv if argv is not None else sys.argv[1:]),
           "gpu": (torch.cuda.get_device_name(0) if torch.cuda.is_available() else
                   "none: no CUDA device on this machine, and the device tool lent none to this session")}
    peaks = kernel_peaks(bf16=has_bf16)
    peak = {k: v["peak"] for k, v in peaks.items()}
    doc["peak_gflops"], doc["peak_kernels"] = peak, {k: v["kernels"] for k, v in peaks.items()}
    print("peak GFLOP/s", json.dumps(peaks, indent=1), flush=True)

    def share(s_per_step: float, flops: float) -> dict:
        out = {"gflops": round(flops / s_per_step / 1e9, 1)}
        out.update({f"share_of_{k}_peak": round(flops / s_per_step / 1e9 / v, 3) for k, v in peak.items()})
        return out

    @functools.cache
    def tf_runner():  # the TensorFlow tutorial's timed step (None with --no-tf): its venv and images made once
        if args.no_tf:
            return None
        py, images = tf_python(Path(args.tf_venv)), tf_images()
        return lambda: tf_step(py, images, args.dcgan_steps, 3)

    models = []
    if "dcgan" in only:
        x = mnist_batch(256)
        cases = {"eager joint fp32": ("eager", set()), "eager joint fp32 split_d": ("eager", {"split_d"}),
                 "eager alternating fp32": ("eager", {"alternating"}),
                 "eager joint fp32 channels_last": ("eager", {"channels_last"}),
                 "eager joint fp32 fused Adam": ("eager", {"fused_adam"}),
                 "eager joint fp32 compile": ("eager", {"compile"}),
                 "counterfeit dcgan-tf-mnist fp32": ("cf", ["train.precision=fp32"]),
                 "counterfeit dcgan-tf-mnist-alternating fp32": ("cf-alt", ["train.precision=fp32"]),
                 "counterfeit dcgan-tf-mnist fp32 compile": ("cf", ["train.precision=fp32", "train.compile=true"])}
        if has_bf16:
            cases.update({"eager joint bf16": ("eager", {"bf16"}),
                          "eager joint bf16 channels_last": ("eager", {"bf16", "channels_last"}),
                          "eager joint bf16 channels_last split_d": ("eager", {"bf16", "channels_last", "split_d"}),
                          "eager joint bf16 compile": ("eager", {"bf16", "compile"}),
                          "counterfeit dcgan-tf-mnist bf16 (auto)": ("cf", ["train.precision=auto"]),
                          "counterfeit dcgan-tf-mnist bf16 contiguous": ("cf", ["train.precision=auto",
                                                                                "train.memory_format=contiguous"]),
                          "counterfeit dcgan-tf-mnist bf16 compile": ("cf", ["train.precision=auto",
                                                                             "train.compile=true"])})
        models.append(("dcgan", x, cases, tf_runner(), args.dcgan_steps, 3, "dcgan-tf-mnist"))
    if "gan2014" in only:
        x = mnist_batch(100)
        cases = {"eager joint fp32": ("eager", set()), "eager joint fp32 split_d": ("eager", {"split_d"}),
                 "eager joint fp32 amax maxout": ("eager", {"amax_maxout"}),
                 "eager joint fp32 onednn_linear": ("eager", {"onednn_linear"}),
                 "eager joint fp32 compile": ("eager", {"compile"}),
                 "counterfeit gan2014-mnist fp32": ("cf", ["train.precision=fp32"]),
                 "counterfeit gan2014-mnist fp32 compile": ("cf", ["train.precision=fp32", "train.compile=true"])}
        if has_bf16:
            cases.update({"eager joint bf16": ("eager", {"bf16"}), "eager joint bf16 compile": ("eager", {"bf16", "compile"}),
                          # forced: auto keeps MLP nets in fp32 (in bf16 the 2014 GAN collapsed)
                          "counterfeit gan2014-mnist bf16": ("cf", ["train.precision=bf16"]),
                          "counterfeit gan2014-mnist bf16 compile": ("cf", ["train.precision=bf16",
                                                                            "train.compile=true"])})
        models.append(("gan2014", x, cases, None, args.gan2014_steps, 20, "gan2014-mnist"))

    for name, x, cases, tf, steps, warmup, preset in models:
        flops = step_flops(name, x)
        res = {"flops_per_step": flops, "rows": {}}
        print(f"{name}: {flops / 1e9:.2f} GFLOP per step", flush=True)
        for rnd in range(args.rounds):
            todo = ([("tensorflow tutorial fp32", None)] if tf else []) + list(cases.items())
            if args.rows:
                todo = [(label, c) for label, c in todo if picked(label, args.rows)]
            for label, case in todo:
                if case is None:
                    r = tf()
                    s, extra = r["s_per_step"], {"tf": r["tf"]}
                elif case[0] == "eager":
                    s, extra = time_steps(eager_step(name, case[1], x), steps, warmup), {}
                else:
                    s, extra = counterfeit_step(preset + ("-alternating" if case[0] == "cf-alt" else ""),
                                                case[1], steps, warmup), {}
                row = res["rows"].setdefault(label, {"s_per_step": [], **extra})
                row["s_per_step"].append(round(s, 4))
                print(f"  round {rnd + 1} {label}: {s * 1000:.1f} ms/step", flush=True)
        for label, row in res["rows"].items():
            row.update(share(min(row["s_per_step"]), flops))
        base = res["rows"].get("tensorflow tutorial fp32") or res["rows"].get("eager joint fp32") or next(iter(res["rows"].values()))
        for row in res["rows"].values():  # < 1: faster than the baseline (TensorFlow where measured)
            row["time_ratio_to_" + ("tensorflow" if "tensorflow tutorial fp32" in res["rows"] else "eager_fp32")] = \
                round(min(row["s_per_step"]) / min(base["s_per_step"]), 3)
        doc[name] = res

    if "curves" in only:
        doc["curves"] = {}
        if has_bf16:  # bf16 autocast (losses in fp32) against fp32, step by step; both contiguous, so that the
            # dropout masks are the same draws (channels_last fills them in another element order)
            doc["curves"]["dcgan bf16 vs fp32"] = curve_check(
                "dcgan-tf-mnist", ["train.precision=fp32", "train.memory_format=contiguous"],
                ["train.precision=bf16", "train.memory_format=contiguous"], args.curve_steps)
        # the 2014 GAN with this loop (own dropout, separate D passes, fused SGD) against torch's dropout
        doc["curves"]["gan2014 own dropout vs torch dropout"] = curve_check(
            "gan2014-mnist", ["train.precision=fp32"], ["train.precision=fp32"], 10 * args.curve_steps, True)
        print("curves", json.dumps(doc["curves"], indent=1), flush=True)

    if "profile" in only:  # where the 2014 GAN's fp32 step goes: its matmuls against the machine's matmul peak
        doc["gan2014_profile"] = gan2014_profile(peaks["fp32"])
        print("gan2014_profile", doc["gan2014_profile"], flush=True)

    if "gemm" in only:  # the ceiling the 2014 GAN's own matmul shapes put on its step (not in the default)
        doc["gan2014_gemm_ceiling"] = gemm_ceiling(peaks["fp32"])
        print("gan2014_gemm_ceiling", json.dumps(doc["gan2014_gemm_ceiling"], indent=1), flush=True)

    if "dcgan_profile" in only:  # where the tutorial DCGAN's bf16 step goes, operator by operator (not in the default)
        doc["dcgan_profile"] = loop_profile("dcgan-tf-mnist", ["train.precision=bf16"])
        print("dcgan_profile", doc["dcgan_profile"], flush=True)

    if "onednn" in only:  # the tutorial DCGAN's step per oneDNN primitive, torch against TensorFlow (not by default)
        tf_py = None if args.no_tf else tf_python(Path(args.tf_venv))
        doc["onednn"] = {**onednn_breakdown([], tf_py), **(onednn_breakdown(["bf16", "channels_last"], None)
                                                          if has_bf16 else {})}
        print("onednn", json.dumps(doc["onednn"], indent=1), flush=True)

    if "dcgan_ceiling" in only:  # TensorFlow's step against the oneDNN work of torch's (not in the default)
        doc["dcgan_ceiling"] = dcgan_ceiling(args.rounds, tf_runner(), has_bf16)
        print("dcgan_ceiling", json.dumps(doc["dcgan_ceiling"], indent=1), flush=True)

    if "conv_kernels" in only:  # the tutorial DCGAN's big convolutions alone, per pass, dtype and memory format
        doc["conv_kernels_alone"] = conv_kernels()
        print("conv_kernels_alone", json.dumps(doc["conv_kernels_alone"], indent=1), flush=True)

    if "malloc" in only:  # glibc's malloc as it comes against keep_freed_memory, each row in a fresh process
        has = [k for k in MALLOC_CASES if has_bf16 or "bf16" not in k]
        labels = [k for k in has if not args.rows or picked(k, args.rows)]
        tf = None if args.no_tf else (tf_python(Path(args.tf_venv)), tf_images())
        doc["malloc"] = malloc_rows(args.rounds, labels, tf, args.dcgan_steps)
        print("malloc", json.dumps(doc["malloc"], indent=1), flush=True)

    if "load" in only:
        alone = quickstart_runs(1, args.load_steps, None)[0]
        auto = quickstart_runs(2, args.load_steps, None)
        forced = quickstart_runs(2, args.load_steps, os.cpu_count())
        doc["load"] = {"steps": args.load_steps, "alone_s": round(alone, 1), "two_at_once_auto_s": auto,
                       "two_at_once_all_cores_each_s": forced,
                       "slowdown_auto": round(max(auto) / alone, 2), "slowdown_all_cores_each": round(max(forced) / alone, 2),
                       "note": "2.0 is each run getting half the machine"}
        print("load", doc["load"], flush=True)
    Path(args.result).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
