"""Faults a run survives: a second training on one run dir, a full disk during a checkpoint, a real kill -9 inside a
checkpoint write and the temp files it leaves, a run that stopped before its first checkpoint, a full disk at any
other output, a forbidden --out."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from counterfeit import checkpoint as ckpt
from counterfeit.checkpoint import latest_checkpoint, list_checkpoints, safe_load
from counterfeit.cli.__main__ import main
from conftest import tiny_overrides


def _argv(data, out, steps, extra=()):
    sets = tiny_overrides(data, steps) + ["train.parzen_monitor=false", "train.threads=1", *extra]
    return ["train", "gan2014-mnist", "--no-progress", "--out", str(out), *sum([["--set", s] for s in sets], [])]


def _err_lines(capsys):
    return capsys.readouterr().err.strip().splitlines()


def test_a_second_training_on_one_run_dir_is_refused_and_a_killed_holder_frees_it(tmp_path, mnist_dir, capsys):
    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "counterfeit", *_argv(mnist_dir, run, 100000)],
                             env={**os.environ, "COUNTERFEIT_NO_TENSORBOARD": "1"}, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not list_checkpoints(run) and time.time() < deadline and first.poll() is None:
            time.sleep(0.05)
        assert list_checkpoints(run), first.stderr.read() if first.poll() is not None else "no checkpoint in 60 s"
        before = sorted(p.name for p in (run / "checkpoints").iterdir())
        # (steps=1: without the lock this would return at once with 0, not train beside the first one)
        assert main(_argv(mnist_dir, run, 1) + ["--resume"]) == 2
        err = _err_lines(capsys)
        assert len(err) == 1 and f"is in use by another training (pid {first.pid})" in err[0], err
        assert main(_argv(mnist_dir, run, 1)) == 2  # a fresh start on it is refused as before
        capsys.readouterr()
    finally:
        first.kill()  # SIGKILL: no cleanup runs, the kernel drops the lock
        first.wait(timeout=30)
    assert before  # the refused processes wrote nothing over the first one's checkpoints
    stopped = int(safe_load(latest_checkpoint(run))["step"])
    assert main(_argv(mnist_dir, run, stopped + 2) + ["--resume"]) == 0


def test_a_full_disk_at_a_checkpoint_is_one_line_and_keeps_the_previous_one(tmp_path, mnist_dir, capsys, monkeypatch):
    run = tmp_path / "run"
    assert main(_argv(mnist_dir, run, 3)) == 0
    good = latest_checkpoint(run)
    good_bytes = good.read_bytes()
    capsys.readouterr()

    real_mkstemp = ckpt.tempfile.mkstemp

    def full_disk(dir, prefix, suffix):  # the temp file exists, and writing it hits a real ENOSPC (/dev/full)
        fd, path = real_mkstemp(dir=dir, prefix=prefix, suffix=suffix)
        os.close(fd)
        return os.open("/dev/full", os.O_WRONLY), path

    monkeypatch.setattr(ckpt.tempfile, "mkstemp", full_disk)
    assert main(_argv(mnist_dir, run, 6) + ["--resume"]) == 2
    err = _err_lines(capsys)
    assert len(err) == 1 and "no space left in" in err[0] and "MB needed" in err[0] and "Traceback" not in err[0], err
    assert latest_checkpoint(run) == good and good.read_bytes() == good_bytes
    assert not list((run / "checkpoints").glob(".*.tmp"))  # no partial file left


def test_too_little_free_space_is_refused_before_writing(tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt.shutil, "disk_usage", lambda p: type("U", (), {"free": 10})())
    target = tmp_path / "c" / "step-00000001.pt"
    try:
        ckpt.atomic_save({"x": list(range(1000))}, target)
        raise AssertionError("no error")
    except ckpt.UserError as e:
        assert "no space left" in str(e) and "MB needed" in str(e)
    assert not target.exists() and not list(target.parent.glob(".*"))


def test_temp_files_of_a_killed_write_are_removed_on_the_next_start(tmp_path, mnist_dir, capsys):
    run = tmp_path / "run"
    assert main(_argv(mnist_dir, run, 3)) == 0
    orphan = run / "checkpoints" / ".step-00000006.pt.x1y2z3.tmp"
    orphan.write_bytes(b"\0" * 1000)  # what a kill -9 in the middle of torch.save leaves
    assert main(_argv(mnist_dir, run, 6) + ["--resume"]) == 0
    assert not orphan.exists() and int(safe_load(latest_checkpoint(run))["step"]) == 6


def test_a_real_kill_9_in_the_middle_of_a_checkpoint_write_leaves_a_readable_latest_and_a_temp_file_the_next_start_removes(
        tmp_path, mnist_dir):
    """A real process with the paper's full-size nets writes a checkpoint at every step; it is killed with SIGKILL
    the moment a temp file shows, so the kill lands inside torch.save (retried if the rename won the race)."""
    sets = [s for s in tiny_overrides(mnist_dir, 100000) if not s.startswith(("model.", "train.checkpoint_every"))]
    sets += ["train.checkpoint_every=1", "train.keep_checkpoints=2", "train.sample_every=100000",
             "train.log_every=100000", "train.parzen_monitor=false", "train.threads=1"]
    argv = ["train", "gan2014-mnist", "--no-progress", *sum([["--set", s] for s in sets], [])]
    for attempt in range(5):
        run = tmp_path / f"run{attempt}"
        p = subprocess.Popen([sys.executable, "-m", "counterfeit", *argv, "--out", str(run)],
                             env={**os.environ, "COUNTERFEIT_NO_TENSORBOARD": "1"}, stderr=subprocess.DEVNULL)
        deadline, tmp = time.time() + 90, []
        while time.time() < deadline and p.poll() is None:
            d = run / "checkpoints"
            tmp = [e.name for e in os.scandir(d) if e.name.endswith(".tmp")] if d.is_dir() and list_checkpoints(run) \
                else []
            if tmp:
                p.kill()
                break
        p.wait(timeout=30)
        left = sorted((run / "checkpoints").glob("*.tmp"))
        if left:
            break
    assert left, "no kill landed inside a checkpoint write in 5 attempts"
    state = safe_load(latest_checkpoint(run))  # the latest checkpoint is a whole one
    assert int(state["step"]) >= 1 and left[0].stat().st_size <= latest_checkpoint(run).stat().st_size
    resume = ["train", str(run), "--resume", "--no-progress", "--steps", str(int(state["step"]) + 2)]
    assert main(resume) == 0
    assert not list((run / "checkpoints").glob("*.tmp"))
    assert int(safe_load(latest_checkpoint(run))["step"]) == int(state["step"]) + 2


def test_a_run_that_stopped_before_its_first_checkpoint_resumes_from_step_0(tmp_path, mnist_dir, capsys):
    run = tmp_path / "run"
    diverge = ["optim.lr_d=1e30", "optim.lr_g=1e30", "optim.momentum=0", "optim.final_momentum=0",
               "train.log_every=5", "train.checkpoint_every=100"]
    assert main(_argv(mnist_dir, run, 12, diverge)) == 3  # diverged at step 5, before any checkpoint
    assert (run / "config.json").is_file() and not list_checkpoints(run)
    assert main(_argv(mnist_dir, run, 12, diverge)) == 2  # a rerun is refused: it holds a run ...
    capsys.readouterr()
    assert main(_argv(mnist_dir, run, 6) + ["--resume"]) == 0  # ... and --resume starts it cleanly
    assert int(safe_load(latest_checkpoint(run))["step"]) == 6


def test_a_refused_fresh_start_leaves_no_run_dir(tmp_path, mnist_dir, capsys):
    run = tmp_path / "new"
    assert main(_argv(mnist_dir, run, 3, [f"data.name={tmp_path / 'no-such-data'}"])) == 2
    assert len(_err_lines(capsys)) == 1 and not run.exists()


def test_a_toy_run_samples_points_to_npz_and_refuses_a_folder(tmp_path, capsys):
    import numpy as np

    run = tmp_path / "toy"
    assert main(["train", "toy2d-gan", "--steps", "5", "--no-progress", "--out", str(run),
                 "--set", "train.sample_every=5", "--set", "train.checkpoint_every=5"]) == 0
    assert main(["sample", str(run), "--n", "10", "--out", str(tmp_path / "pts.npz")]) == 0
    with np.load(tmp_path / "pts.npz") as d:
        assert list(d) == ["points"] and d["points"].shape == (10, 2) and d["points"].dtype == np.float32
    capsys.readouterr()
    assert main(["sample", str(run), "--n", "10", "--out", str(tmp_path / "pngs")]) == 2
    err = _err_lines(capsys)
    assert len(err) == 1 and "its samples are points, not images" in err[0] and not (tmp_path / "pngs").exists()


def _to_dev_full(*a, **k):
    """What writing an output on a full disk does: a real ENOSPC, from /dev/full."""
    with open("/dev/full", "wb") as f:
        f.write(b"\0" * 65536)


@pytest.mark.parametrize("what", ["grid", "gif", "curves", "report", "metrics"])
def test_a_full_disk_at_any_output_of_a_run_is_one_line_and_keeps_the_checkpoints(what, tmp_path, mnist_dir, capsys,
                                                                                monkeypatch):
    from counterfeit.hooks import artefacts, preview
    from counterfeit.loop import writer

    run = tmp_path / "run"
    assert main(_argv(mnist_dir, run, 3)) == 0
    good = latest_checkpoint(run)
    good_bytes = good.read_bytes()
    capsys.readouterr()
    target = {"grid": (preview, "save_grid"), "gif": (artefacts, "make_gif"), "curves": (artefacts, "plot_curves"),
              "report": (artefacts, "write_report")}.get(what)
    if target:
        monkeypatch.setattr(*target, _to_dev_full)
    else:
        monkeypatch.setattr(writer.RunWriter, "log", lambda self, row: _to_dev_full())
    assert main(_argv(mnist_dir, run, 6) + ["--resume"]) == 2
    err = _err_lines(capsys)
    assert len(err) == 1 and "no space left in" in err[0] and "Traceback" not in err[0], err
    named = {"grid": "samples", "gif": "progress.gif", "curves": "curves.png", "report": "report.html",
             "metrics": "metrics.jsonl"}[what]
    assert named in err[0], err
    assert good.read_bytes() == good_bytes  # the last checkpoint is intact (and a later one, if written, complete)
    assert safe_load(latest_checkpoint(run))["step"] >= 3


def test_sample_and_evaluate_outputs_on_a_full_disk_or_a_forbidden_folder(tmp_path, mnist_dir, capsys, monkeypatch):
    import numpy as np

    run = tmp_path / "run"
    assert main(_argv(mnist_dir, run, 3)) == 0
    capsys.readouterr()
    monkeypatch.setattr(np, "savez_compressed", _to_dev_full)
    assert main(["sample", str(run), "--n", "8", "--out", str(tmp_path / "s.npz")]) == 2
    err = _err_lines(capsys)
    assert len(err) == 1 and "no space left in" in err[0] and str(tmp_path) in err[0], err
    assert not list(tmp_path.glob("*s.npz*"))  # no partial file
    monkeypatch.undo()
    from PIL import Image

    monkeypatch.setattr(Image.Image, "save", _to_dev_full)
    assert main(["sample", str(run), "--n", "4", "--out", str(tmp_path / "pngs")]) == 2
    assert "no space left in" in _err_lines(capsys)[0]
    # a folder output holds every result or none: nothing of what it began to write is left, not even a temp folder
    assert not (tmp_path / "pngs").exists() and not list(tmp_path.glob(".pngs.*"))
    monkeypatch.undo()
    if os.access("/sys", os.W_OK) and not Path("/sys").is_mount():
        pytest.skip("/sys is writable here")
    for argv in (["sample", str(run), "--n", "4", "--out", "/sys/counterfeit-test.npz"],
                 ["evaluate", str(run), "--metrics", "parzen", "--n", "20", "--json", "/sys/counterfeit-test.json"],
                 _argv(mnist_dir, Path("/sys/counterfeit-test-run"), 2)):
        assert main(argv) == 2, argv
        err = _err_lines(capsys)
        assert len(err) == 1 and err[0].startswith("counterfeit: error: cannot write /sys/counterfeit-test"), err


def test_a_full_disk_under_tensorboards_writer_thread_is_one_line_naming_tb(tmp_path, mnist_dir, capsys, monkeypatch):
    """TensorBoard writes from a thread of its own; a full disk there used to print that thread's traceback. Now:
    one line naming RUN/tb, exit 2, the checkpoints intact."""
    import errno

    from tensorboard.summary.writer import record_writer

    monkeypatch.delenv("COUNTERFEIT_NO_TENSORBOARD", raising=False)
    real, calls = record_writer.RecordWriter.write, [0]

    def full(self, data):
        calls[0] += 1
        if calls[0] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(record_writer.RecordWriter, "write", full)
    run = tmp_path / "run"
    assert main(_argv(mnist_dir, run, 12)) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err and f"cannot write {run / 'tb'}: no space left" in lines[0], err
