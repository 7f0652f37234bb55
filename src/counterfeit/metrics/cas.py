"""Classification accuracy score (Ravuri & Vinyals, 2019) for conditional generators.

Train a classifier only on generated (image, requested label) pairs, then test it on the real test set. A model whose
samples ignore their label, or cover a class poorly, scores low even when each image looks fine. For scale, the same
classifier trained on the same number of *real* training images is reported beside it.
"""

from __future__ import annotations

import torch

from ..errors import UserError
from .features import train_classifier


def classification_accuracy_score(recipe, test_x: torch.Tensor, test_y: torch.Tensor, n: int = 10000,
                                  epochs: int = 5, seed: int = 0, real: tuple | None = None,
                                  progress: bool = False) -> dict:
    """recipe: a conditional recipe with its trained G; test_x uint8 (N, C, H, W); real: optional (x, y) train set."""
    from ..sampling import generate

    if not recipe.conditional:
        raise UserError("the classification accuracy score needs a conditional model (num_classes > 0)")
    k = recipe.num_classes
    labels = torch.arange(n) % k  # balanced: n / k samples per class
    fake = generate(recipe, n, seed=seed, labels=labels)
    _, info = train_classifier(fake, labels, test_x, test_y, epochs=epochs, seed=seed, progress=progress,
                               num_classes=k)
    out = {"cas": info["test_accuracy"], "n_generated": n, "epochs": epochs, "n_test": len(test_x)}
    if real is not None:
        rx, ry = real
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(rx), generator=g)[:n]
        _, rinfo = train_classifier(rx[idx], ry[idx], test_x, test_y, epochs=epochs, seed=seed, progress=progress,
                                    num_classes=k)
        out["real_data_accuracy"] = rinfo["test_accuracy"]
        out["n_real"] = len(idx)
    return out
