import functools
import http.server
import shutil
import threading
from pathlib import Path

import pytest
import torch

from counterfeit import checkpoint as ckpt
from counterfeit.data import fetch, load_data
from counterfeit.errors import UserError

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "mnist"


def test_atomic_save_leaves_the_old_checkpoint_when_a_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    ckpt.atomic_save({"format": 1, "G": {"w": torch.ones(3)}}, path)
    before = path.read_bytes()

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        ckpt.atomic_save({"format": 1, "G": {"w": torch.zeros(3)}}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temp file left behind


@pytest.fixture
def mirror(tmp_path):
    """A real HTTP server on 127.0.0.1 serving a folder, like a dataset mirror."""
    root = tmp_path / "mirror"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="shared/datasets/mnist not beside the checkout")
def test_download_verifies_sha256_and_refuses_a_bad_mirror(tmp_path, mirror, monkeypatch):
    root, url = mirror
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("COUNTERFEIT_DATA", str(tmp_path / "nowhere"))
    monkeypatch.delenv("COUNTERFEIT_OFFLINE", raising=False)
    monkeypatch.setattr(fetch, "SYSTEM_DIRS", {})
    monkeypatch.setitem(fetch.MIRRORS, "mnist", [url])
    for f in SHARED_MNIST.glob("*.gz"):
        shutil.copy(f, root / f.name)
    good = (root / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(
        (SHARED_MNIST / "train-labels-idx1-ubyte.gz").read_bytes())  # valid gzip, wrong content
    with pytest.raises(UserError, match="sha256"):
        fetch.locate("mnist")
    assert not (tmp_path / "cache" / "counterfeit" / "mnist" / "t10k-labels-idx1-ubyte.gz").exists()
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(good)
    assert fetch.locate("mnist") == tmp_path / "cache" / "counterfeit" / "mnist"
    assert len(load_data("mnist", "test")) == 10000
