"""Train or test the domain classifiers that serve as pinned feature extractors for FID/KID/IS/PR."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError


def build_parser(p):
    p.add_argument("action", choices=["train", "test"])
    p.add_argument("--data", required=True, help="mnist or fashion-mnist (or an IDX folder path)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="folder for the weights and manifest.json (default: the package's own)")
    p.add_argument("--no-progress", action="store_true")
    return p


def run(args) -> int:
    from ..data import load_data
    from ..metrics import features as feat

    test = load_data(args.data, "test")
    if args.action == "test":
        ex = feat.load_extractor(args.data)
        acc = feat.evaluate_accuracy(ex.model, test.x, test.y)
        print(f"{args.data} classifier (sha256 {ex.sha256[:16]}...): test accuracy {acc:.4f} on {len(test)} images")
        return 0
    train = load_data(args.data, "train")
    if train.y is None:
        raise UserError(f"dataset '{args.data}' has no labels to train a classifier on")
    model, info = feat.train_classifier(train.x, train.y, test.x, test.y, epochs=args.epochs, seed=args.seed,
                                        progress=not args.no_progress)
    from safetensors.torch import save_file

    root = Path(args.out) if args.out else feat._weights_root()
    root.mkdir(parents=True, exist_ok=True)
    name = Path(args.data).name if Path(args.data).exists() else args.data
    path = root / f"{name}-classifier.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    m = feat.manifest(root)
    m[name] = {"file": path.name, "sha256": feat.sha256_file(path), "channels": int(train.x.shape[1]),
               "num_classes": int(train.y.max()) + 1, "command": f"counterfeit classifier train --data {args.data} "
               f"--epochs {args.epochs} --seed {args.seed}", **info}
    (root / "manifest.json").write_text(json.dumps(m, indent=2, sort_keys=True) + "\n")
    print(f"{name}: test accuracy {info['test_accuracy']:.4f} after {args.epochs} epochs ({info['train_s']:.0f} s) -> {path}")
    return 0
