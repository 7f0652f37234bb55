"""Training under torchrun: real torch.distributed (gloo) processes on 127.0.0.1, launched by torchrun itself.

Every test starts real worker processes and stops by itself (a timeout on each launch). GLOO_SOCKET_IFNAME=lo keeps
the traffic on loopback.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import tiny_overrides

from counterfeit import config
from counterfeit.checkpoint import latest_checkpoint, list_checkpoints, safe_load
from counterfeit.errors import UserError
from counterfeit.loop import train

HERE = Path(__file__).parent
pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or sys.platform != "linux",
                                reason="needs torch.distributed and Linux")

# a 2D toy GAN with no BatchNorm and no dropout: plain MLPs, Adam, alternating D and G steps
TOY = ["train.batch_size=64", "train.log_every=5", "train.sample_every=1000", "train.checkpoint_every=10",
       "train.keep_checkpoints=0"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp_path) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo", COUNTERFEIT_NO_TENSORBOARD="1",
               COUNTERFEIT_RUNTIME_DIR=str(tmp_path / "peers"), COUNTERFEIT_DIST_TIMEOUT="60")
    env.pop("WORLD_SIZE", None)
    return env


def torchrun(tmp_path, args, nproc=2, extra=(), timeout=180, wait=True):
    """torchrun on loopback (c10d rendezvous on 127.0.0.1) running `args` (a script, or -m counterfeit ...)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", f"--nproc-per-node={nproc}",
           "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{_port()}", "--rdzv-id=test", *extra, *args]
    p = subprocess.Popen(cmd, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    if not wait:
        return p
    return _finish(p, timeout)


def _finish(p, timeout):
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        raise AssertionError(f"torchrun did not finish within {timeout} s:\n{err[-3000:]}")
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def cf_train(*args) -> list[str]:
    return ["-m", "counterfeit", "train", *args, "--no-progress"]


def nets_of(run: Path) -> dict:
    state = safe_load(latest_checkpoint(run))
    return {**state["nets"], **{f"ema/{k}": v for k, v in state["ema"].items()}}


def _assert_same(a: dict, b: dict, atol=0.0):
    assert a.keys() == b.keys()
    for n in a:
        for k, t in a[n].items():
            if atol:
                torch.testing.assert_close(t, b[n][k], atol=atol, rtol=0, msg=f"{n}.{k}")
            else:
                assert torch.equal(t, b[n][k]), f"{n}.{k}"


# ---------------------------------------------------------------------------------------------- every recipe


def test_every_recipe_and_regulariser_keeps_the_ranks_identical(tmp_path, cifar_dir, aligned_dir, unpaired_dir):
    """After a few steps on 2 ranks, every parameter and buffer of every network (EMA included) is the same on both
    ranks, bit for bit: checked by an all-gather of each tensor in the workers. The same check is shown to fail
    when one rank's copy of one weight is nudged."""
    img = ["model.width_g=8", "model.width_d=8", "model.embed_dim=4", "model.z_dim=8", "train.batch_size=8",
           "train.steps=3", "train.epochs=0", "train.log_every=1", "train.sample_grid=2", "train.parzen_monitor=false",
           "data.name=embedded", "data.split=train"]
    trans = ["model.width_g=4", "model.width_d=4", "model.n_blocks=1", "model.patch_layers=1", "train.batch_size=4",
             "train.steps=3", "train.sample_every=1000", "train.checkpoint_every=1000", "train.log_every=1",
             "train.sample_grid=2", "optim.linear_decay_start=0"]
    toy = ["train.steps=6", "train.batch_size=32", "train.log_every=2", "data.name=toy:ring8"]
    runs = {
        "gan2014 joint, maxout + dropout, SGD momentum": ("gan2014-mnist", img + ["model.g_hidden=[32, 32]",
                                                                                  "model.d_units=16"]),
        "dcgan BatchNorm, R1, EMA": ("dcgan-mnist", img + ["loss.r1_gamma=10", "train.ema_decay=0.5"]),
        "wgan-gp gradient penalty, 5 critic steps": ("toy2d-wgan-gp", toy),
        "wgan weight clipping, RMSprop": ("wgan-fashion", img),
        "acgan class terms": ("acgan-mnist", img),
        "cgan": ("cgan-mnist", img),
        "lsgan": ("lsgan-fashion", img),
        "hinge + spectral norm": ("sngan-cifar10", img[:-2] + [f"data.name={cifar_dir}", "data.split=train"]),
        "instance noise": ("toy2d-noise", toy),
        "pacgan": ("toy2d-pacgan4", toy),
        "joint toy": ("toy2d-gan", toy + ["train.simultaneous=true"]),
        "vae": ("vae-mnist", img),
        "pix2pix U-Net dropout": ("pix2pix-edges2fashion", trans + [f"data.name={aligned_dir}"]),
        "cyclegan image pool, identity": ("cyclegan-edges2fashion", trans + [f"data.name={unpaired_dir}"]),
    }
    spec = [{"name": k, "preset": p, "overrides": o, "out": str(tmp_path / f"run{i}")}
            for i, (k, (p, o)) in enumerate(runs.items())]
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    r = torchrun(tmp_path, [str(HERE / "dist" / "worker.py"), str(tmp_path / "spec.json"), str(tmp_path / "res.json")],
                 timeout=400)
    assert r.returncode == 0, r.stderr[-4000:]
    res = json.loads((tmp_path / "res.json").read_text())
    assert set(res) == set(runs)
    for name, v in res.items():
        assert v["step"] == 3 or v["step"] == 6, name
        assert v["tensors"] > 4, name
        assert v["max_diff"] == 0.0 and not v["differing"], f"{name}: ranks differ in {v['differing']}"
        assert v["control_diff"] > 0, name  # the check sees a nudged weight


# ---------------------------------------------------------------------------------------------- the maths


def test_two_processes_equal_one_with_the_same_global_batch(tmp_path):
    """World-size invariance: DDP averages the two half-batch gradients into the full batch's, and G's noise is the
    global batch's draw split in two, so 2 ranks x 32 and 1 process x 64 end with the same weights."""
    args = ["--set", "train.steps=30", *sum((["--set", o] for o in TOY), [])]
    r = torchrun(tmp_path, cf_train("toy2d-gan", "--out", str(tmp_path / "two"), *args))
    assert r.returncode == 0, r.stderr[-3000:]
    cfg = config.load_config("toy2d-gan", ["train.steps=30", *TOY])
    train(cfg, tmp_path / "one", progress=False)
    two, one = nets_of(tmp_path / "two"), nets_of(tmp_path / "one")
    _assert_same(two, one, atol=1e-5)
    # and it is not the trivial equality of untrained nets
    fresh = safe_load(list_checkpoints(tmp_path / "one")[0][1])  # step 10
    assert not torch.equal(fresh["nets"]["G"]["net.0.weight"], one["G"]["net.0.weight"])
    # the metrics are the global batch's: one row per logged step, the same losses up to float error
    rows = [[json.loads(x) for x in (tmp_path / d / "metrics.jsonl").read_text().splitlines()] for d in ("two", "one")]
    assert [r["step"] for r in rows[0]] == [r["step"] for r in rows[1]]
    for a, b in zip(*rows):
        if "loss/D/total" in a:
            assert abs(a["loss/D/total"] - b["loss/D/total"]) < 1e-4


def test_evaluation_during_training_is_sharded_and_scores_as_one_process(tmp_path, mnist_dir, monkeypatch):
    """train.eval_every under torchrun: each rank makes and featurises its half of the eval samples, rank 0 scores
    the gathered features. With dropout off (the 2014 nets are then world-size invariant) the 2-process run's
    scores at each tick, and its best.json, are the 1-process run's up to float error; n_fake counts both halves."""
    from counterfeit.metrics.features import manifest

    if "mnist" not in manifest():
        pytest.skip("no bundled MNIST classifier")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    sets = tiny_overrides(mnist_dir, steps=6) + [
        "model.d_input_keep=1", "model.d_hidden_keep=1", "train.eval_every=3", "train.eval_samples=200",
        "train.eval_extractor=mnist", "train.eval_metrics=[fid, kid, classes]", "train.parzen_monitor=false"]
    r = torchrun(tmp_path, cf_train("gan2014-mnist", "--out", str(tmp_path / "two"), *sum((["--set", o] for o in sets), [])),
                 timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    train(config.load_config("gan2014-mnist", sets), tmp_path / "one", progress=False)
    _assert_same(nets_of(tmp_path / "two"), nets_of(tmp_path / "one"), atol=1e-5)
    evals = [[json.loads(x) for x in (tmp_path / d / "metrics.jsonl").read_text().splitlines() if '"eval/fid"' in x]
             for d in ("two", "one")]
    assert [e["step"] for e in evals[0]] == [e["step"] for e in evals[1]] == [3, 6]
    for a, b in zip(*evals):
        assert a["eval/fid"] == pytest.approx(b["eval/fid"], rel=1e-3)
        assert a["eval/kid"] == pytest.approx(b["eval/kid"], rel=1e-2, abs=1e-4)
        assert a["eval/classes"] == b["eval/classes"]
    best = [json.loads((tmp_path / d / "best.json").read_text()) for d in ("two", "one")]
    assert best[0]["step"] == best[1]["step"] and best[0]["value"] == pytest.approx(best[1]["value"], rel=1e-3)
    assert best[0]["provenance"]["n_fake"] == best[1]["provenance"]["n_fake"] == 200


def test_exact_resume_under_ddp_and_one_line_for_another_world_size(tmp_path):
    """20 steps on 2 ranks in one go = 10 steps + --resume to 20, bit for bit; rank 0 alone wrote the run dir; a
    1-process resume of that run is refused in one line. Launched through `counterfeit train --nproc 2`."""
    env = _env(tmp_path)
    base = [sys.executable, "-m", "counterfeit", "train", "toy2d-wgan-gp", "--nproc", "2", "--no-progress",
            *sum((["--set", o] for o in TOY + ["train.n_dis=2"]), [])]
    a = subprocess.run(base + ["--out", str(tmp_path / "a"), "--steps", "20"], env=env, capture_output=True,
                       text=True, timeout=180)
    assert a.returncode == 0, a.stderr[-3000:]
    b1 = subprocess.run(base + ["--out", str(tmp_path / "b"), "--steps", "10"], env=env, capture_output=True,
                        text=True, timeout=180)
    assert b1.returncode == 0, b1.stderr[-3000:]
    b2 = subprocess.run(base + ["--out", str(tmp_path / "b"), "--steps", "20", "--resume"], env=env,
                        capture_output=True, text=True, timeout=180)
    assert b2.returncode == 0, b2.stderr[-3000:]
    _assert_same(nets_of(tmp_path / "a"), nets_of(tmp_path / "b"))
    assert safe_load(latest_checkpoint(tmp_path / "b"))["world"] == 2
    # rank 0 alone writes: one metrics row per logged step, no torn lines, no second lock holder's files
    rows = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if "loss/D/total" in r]
    assert steps == [5, 10, 15, 20]
    assert a.stdout.count("run dir:") == 1
    with pytest.raises(UserError, match="written by 2 processes and this run has 1"):
        cfg = config.load_config("toy2d-wgan-gp", ["train.steps=30", *TOY, "train.n_dis=2"])
        train(cfg, tmp_path / "b", resume=True, progress=False)


def test_a_user_error_on_rank_0_stops_every_rank_with_one_line(tmp_path):
    """Rank 0 finds the --out taken (a run is already there); the other rank must not wait for it in a collective."""
    cfg = config.load_config("toy2d-gan", ["train.steps=2", *TOY])
    train(cfg, tmp_path / "taken", progress=False)
    t = time.time()
    r = torchrun(tmp_path, cf_train("toy2d-gan", "--out", str(tmp_path / "taken"), "--steps", "4"), timeout=120)
    assert r.returncode != 0 and time.time() - t < 100
    assert r.stderr.count("already holds a run") == 1, r.stderr[-2000:]
    assert "[rank0]: Traceback" not in r.stderr and "[rank1]: Traceback" not in r.stderr


# ---------------------------------------------------------------------------------------------- launching


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


@pytest.mark.slow
def test_elastic_restart_after_a_killed_worker_ends_with_the_uninterrupted_weights(tmp_path):
    """kill -9 one worker of a 2-process `torchrun --max-restarts=1` job mid-run: torchrun restarts both, they
    resume from the last checkpoint and finish with the same weights as a run nobody interrupted."""
    steps = ["--set", "train.steps=400", *sum((["--set", o] for o in TOY + ["train.checkpoint_every=50"]), [])]
    ref = torchrun(tmp_path, cf_train("toy2d-gan", "--out", str(tmp_path / "ref"), *steps))
    assert ref.returncode == 0, ref.stderr[-3000:]
    p = torchrun(tmp_path, cf_train("toy2d-gan", "--out", str(tmp_path / "run"), *steps), extra=["--max-restarts=1"],
                 wait=False)
    deadline, killed = time.time() + 120, None
    while time.time() < deadline and killed is None:
        done = list_checkpoints(tmp_path / "run")
        workers = _children(p.pid)
        if len(done) >= 2 and len(workers) == 2:  # past step 100: kill one worker outright
            killed = max(workers)
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    assert killed is not None, "the run never reached its second checkpoint"
    r = _finish(p, 180)
    assert r.returncode == 0, r.stderr[-3000:]
    assert safe_load(latest_checkpoint(tmp_path / "run"))["step"] == 400
    _assert_same(nets_of(tmp_path / "ref"), nets_of(tmp_path / "run"))
    # torchrun saw a failed worker: the killed one (-9), or its peer that noticed first (PeerLost, 4); it restarted
    # the group, which then finished
    assert "exitcode: -9" in r.stderr or "exitcode: 4" in r.stderr
    assert "lost another process" in r.stderr and "[rank0]: Traceback" not in r.stderr


@pytest.mark.slow
def test_two_nodes_on_loopback(tmp_path):
    """Two torchrun agents, --nnodes=2 on 127.0.0.1: one rendezvous, ranks 0 and 1, one run dir written by rank 0;
    its weights are those of one process with the same global batch."""
    port = _port()
    agents = []
    for node in (0, 1):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1",
               "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=two-nodes",
               f"--rdzv-conf=is_host={'true' if node == 0 else 'false'}",
               *cf_train("toy2d-gan", "--out", str(tmp_path / "run"), "--set", "train.steps=20",
                         *sum((["--set", o] for o in TOY), []))]
        agents.append(subprocess.Popen(cmd, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True, start_new_session=True))
        time.sleep(1.0)
    results = [_finish(a, 180) for a in agents]
    for node, r in enumerate(results):
        assert r.returncode == 0, f"node {node} exit {r.returncode}:\n{r.stderr[:1500]}\n...\n{r.stderr[-2500:]}"
    cfg = config.load_config("toy2d-gan", ["train.steps=20", *TOY])
    train(cfg, tmp_path / "one", progress=False)
    _assert_same(nets_of(tmp_path / "run"), nets_of(tmp_path / "one"), atol=1e-5)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["steps"] == 20


def test_a_signal_caught_as_the_stop_agreement_returns_stops_every_rank_at_the_next_step(tmp_path):
    """Rank 1 takes SIGTERM just as step 20's stop agreement returns, after both ranks said "no signal" (where a
    signal sent while a rank waits in that all-reduce is handled): both ranks stop at step 21 and checkpoint it. Had
    rank 1 acted on it at step 20, it would have run the stop's collectives alone and the job would have hung."""
    r = torchrun(tmp_path, [str(HERE / "dist" / "late_signal.py"), "toy2d-gan", str(tmp_path / "run"), str(tmp_path),
                            "20", *TOY, "train.steps=1000", "train.checkpoint_every=1000"], timeout=90)
    ranks = [json.loads((tmp_path / f"rank-{k}.json").read_text()) for k in (0, 1)]
    assert all(rk["code"] == 143 and rk["stopped"].startswith("SIGTERM at step 21:") for rk in ranks), \
        (ranks, r.stderr[-2000:])
    assert safe_load(latest_checkpoint(tmp_path / "run"))["step"] == 21


def test_sigterm_to_torchrun_checkpoints_on_every_rank_and_resumes(tmp_path):
    """SIGTERM to the torchrun agent (what schedulers send): it passes it to the workers, which agree on a step,
    write one checkpoint and exit 143; --resume then goes on from it."""
    steps = ["--set", "train.steps=100000", *sum((["--set", o] for o in TOY + ["train.checkpoint_every=100000"]), [])]
    p = torchrun(tmp_path, cf_train("toy2d-gan", "--out", str(tmp_path / "run"), *steps), wait=False)
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / "run" / "metrics.jsonl").is_file():
        time.sleep(0.1)
    time.sleep(2.0)
    os.kill(p.pid, signal.SIGTERM)
    r = _finish(p, 120)
    assert r.returncode != 0
    assert "SIGTERM at step" in r.stderr, r.stderr[-3000:]
    ck = latest_checkpoint(tmp_path / "run")
    assert ck is not None and 0 < safe_load(ck)["step"] < 100000


def test_sigterm_during_an_evaluation_under_torchrun_abandons_it_and_checkpoints_within_seconds(tmp_path, mnist_dir,
                                                                                                 monkeypatch):
    """SIGTERM to torchrun while the ranks evaluate (here a minute's worth of batches): each rank stops its share
    between batches, the ranks agree to drop the evaluation, and both checkpoint the next step and exit 143 within
    seconds, well inside torchrun's 30 s before it kills its workers."""
    from counterfeit.metrics.features import manifest

    if "mnist" not in manifest():
        pytest.skip("no bundled MNIST classifier")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    sets = tiny_overrides(mnist_dir, steps=1000) + [
        "train.eval_every=3", "train.eval_samples=30000", "train.eval_extractor=mnist", "train.eval_metrics=[fid]",
        "train.checkpoint_every=1000", "train.parzen_monitor=false", "train.sample_every=1000"]
    p = torchrun(tmp_path, [str(HERE / "dist" / "slow_eval.py"), "gan2014-mnist", str(tmp_path / "run"),
                            str(tmp_path), *sets], wait=False)
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / "evaluating").is_file():
        time.sleep(0.1)
    assert (tmp_path / "evaluating").is_file(), "the evaluation never started"
    time.sleep(1.5)
    sent = time.time()
    os.kill(p.pid, signal.SIGTERM)
    r = _finish(p, 120)
    took = time.time() - sent
    ranks = [json.loads((tmp_path / f"rank-{k}.json").read_text()) for k in (0, 1)]
    assert all(rk["code"] == 143 and rk["stopped"].startswith("SIGTERM at step 4") for rk in ranks), \
        (ranks, r.stderr[-2000:])
    assert took < 20, f"{took:.0f} s from SIGTERM to exit"
    assert "evaluation at step 3 abandoned" in r.stderr
    assert safe_load(latest_checkpoint(tmp_path / "run"))["step"] == 4
    assert '"eval/fid"' not in (tmp_path / "run" / "metrics.jsonl").read_text()
