"""Image-to-image translation data: two domains A and B, paired (Pix2Pix) or unpaired (CycleGAN), all offline.

Readers
  a folder in the authors' layouts (junyanz/pytorch-CycleGAN-and-pix2pix), so facades, maps, horse2zebra ... work:
    unpaired  ROOT/{trainA, trainB, testA, testB}/   images of each domain, no correspondence;
    aligned   ROOT/{train, val, test}/               each image is A and B side by side (A left), as their AB sets;
  built-in tasks made from data already on the machine (nothing is downloaded):
    edges2fashion           A = the Canny edge map of a Fashion-MNIST article, B = the article (paired);
    edges2fashion-unpaired  the same task with no pair ever seen in training: A = edges of train[0:30000],
                            B = articles train[30000:60000] (the CycleGAN paper's protocol, its Table 2); the test
                            split keeps its pairs, so both recipes are scored on the same pairs;
    colorize                A = grayscale, B = colour: 64x64 crops of the colour photographs that ship with
                            scikit-image; whole photographs are held out for test.
The edge operator is `skimage.feature.canny(x / 255, sigma=1.0, low_threshold=0.1, high_threshold=0.2)` on each
28x28 article (EDGE_OPERATOR); edges are white (255) on black. Articles and edges are padded with 2 black pixels
to 32x32 so a U-Net of 5 levels fits; the bundled Fashion-MNIST classifier scores the central 28x28 (`border`).
Edge maps are computed once and cached in the user cache dir, keyed by the articles' content.

Augmentation as the authors' options, applied per batch on the device (`jitter`): a random crop of
`data.crop_size` from images held at `data.image_size` (their load_size / crop_size) and a random horizontal flip
(`data.flip`); a pair gets the same crop and flip, unpaired domains their own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import UserError
from .folder import as_8bit, image_files, is_gray, open_images, warn_upscale

BUILTIN = ["edges2fashion", "edges2fashion-unpaired", "colorize"]
EDGE_OPERATOR = {"function": "skimage.feature.canny", "input": "article / 255 (28x28 float)", "sigma": 1.0,
                 "low_threshold": 0.1, "high_threshold": 0.2, "output": "edges 255 on 0, padded to 32x32"}
FASHION_PAD = 2
# colour photographs in scikit-image's data folder (read as files; no download): whole photos train or test
COLORIZE_TRAIN = ["astronaut.png", "rocket.jpg", "motorcycle_left.png"]
COLORIZE_TEST = ["chelsea.png", "coffee.png"]
COLORIZE_SIZE, COLORIZE_SHORT_SIDE = 64, 256  # crops of 64x64 from photos scaled to a shorter side of 256
COLORIZE_STRIDE = {"train": 16, "test": 32}


@dataclass
class TranslationData:
    """Two image domains in memory as uint8 (N, C, H, W); paired sets share one index."""

    A: torch.Tensor
    B: torch.Tensor
    paired: bool
    name: str
    labels: torch.Tensor | None = None  # (len(B),) class of each B image, where known (the classifier score)
    scorer: str = ""  # the bundled classifier that scores B-domain images ("fashion-mnist"), if any
    border: int = 0  # padding around the scorer's images (edges2fashion: 2, 32x32 -> the classifier's 28x28)
    is_image = True
    y = None  # no class labels to condition on

    def __post_init__(self):
        for k, t in (("A", self.A), ("B", self.B)):
            assert t.dtype == torch.uint8 and t.ndim == 4, (k, t.dtype, t.shape)
        if self.A.shape[2:] != self.B.shape[2:]:
            raise UserError(f"{self.name}: domain A is {tuple(self.A.shape[2:])} and B is {tuple(self.B.shape[2:])}; "
                            "set data.image_size so both are resized to one size")
        if self.paired and len(self.A) != len(self.B):
            raise UserError(f"{self.name}: a paired set needs as many A as B images ({len(self.A)} vs {len(self.B)})")

    def __len__(self) -> int:
        return len(self.A)

    @property
    def shape(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """(A's (C, H, W), B's (C, H, W)): what a recipe builds its networks for, and a checkpoint records."""
        return tuple(self.A.shape[1:]), tuple(self.B.shape[1:])

    @property
    def index_groups(self) -> list[dict[str, torch.Tensor]]:
        return [{"A": self.A, "B": self.B}] if self.paired else [{"A": self.A}, {"B": self.B}]

    def subset(self, start: int, stop: int) -> "TranslationData":
        return TranslationData(self.A[start:stop], self.B[start:stop], self.paired, self.name,
                               None if self.labels is None else self.labels[start:stop], self.scorer, self.border)

    def swapped(self) -> "TranslationData":
        """B -> A as A -> B (the authors' --direction BtoA); labels and scorer belong to B and are dropped."""
        return TranslationData(self.B, self.A, self.paired, self.name)


def provenance(name: str) -> dict:
    """How a built-in task is made, for result files."""
    if name.startswith("edges2fashion"):
        return {"source": "fashion-mnist", "edge_operator": EDGE_OPERATOR, "pad": FASHION_PAD,
                "unpaired_train": "A = edges of train[0:30000], B = train[30000:60000]" if name.endswith("unpaired")
                else None}
    if name == "colorize":
        return {"source": "scikit-image data folder", "train_photos": COLORIZE_TRAIN, "test_photos": COLORIZE_TEST,
                "crop": COLORIZE_SIZE, "short_side": COLORIZE_SHORT_SIDE, "stride": COLORIZE_STRIDE,
                "grayscale": "PIL convert('L') (ITU-R 601-2 luma)"}
    return {"folder": name}


def is_translation(name: str) -> bool:
    """A built-in translation task, or a folder in one of the authors' layouts."""
    if name in BUILTIN:
        return True
    p = Path(name).expanduser()
    return p.is_dir() and any((p / d).is_dir() for d in ("trainA", "trainB", "testA", "testB", "train", "val")) \
        and not any(p.glob("*-idx3-ubyte*"))


def load_translation(name: str, split: str = "train", image_size: int = 0, channels: int = 0, limit: int = 0,
                     direction: str = "AtoB") -> TranslationData:
    split = {"paper-train": "train", "paper-valid": "val"}.get(split, split)
    if split not in ("train", "val", "test"):
        raise UserError(f"translation data has splits train, val (aligned folders) and test, not '{split}'")
    if name in ("edges2fashion", "edges2fashion-unpaired"):
        d = _edges2fashion(split, unpaired=name.endswith("unpaired"))
    elif name == "colorize":
        d = _colorize(split)
    else:
        d = _folder(Path(name).expanduser(), split, image_size, channels)
    if limit:
        d = TranslationData(d.A[:limit], d.B[:limit], d.paired, d.name,
                            None if d.labels is None else d.labels[:limit], d.scorer, d.border)
    if direction == "BtoA":
        d = d.swapped()
    elif direction != "AtoB":
        raise UserError(f"data.direction: '{direction}' is not one of AtoB, BtoA")
    if len(d.A) == 0 or len(d.B) == 0:
        raise UserError(f"translation data '{name}' split '{split}' is empty")
    return d


# ---------------------------------------------------------------------------------------------- edges2fashion


def edge_maps(x: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 1, H, W) articles -> uint8 (N, 1, H, W) Canny edge maps (EDGE_OPERATOR), 255 on 0."""
    from skimage.feature import canny

    a = x[:, 0].numpy().astype(np.float64) / 255.0
    op = EDGE_OPERATOR
    e = np.stack([canny(img, sigma=op["sigma"], low_threshold=op["low_threshold"], high_threshold=op["high_threshold"])
                  for img in a])
    return torch.from_numpy(e.astype(np.uint8) * 255)[:, None]


def cached_edges(x: torch.Tensor, tag: str) -> torch.Tensor:
    """edge_maps(x), cached on disk by the images' content and the edge operator's settings."""
    from ..checkpoint import atomic_save
    from .fetch import cache_dir

    key = hashlib.sha256(x.contiguous().numpy().tobytes() + repr(sorted(EDGE_OPERATOR.items())).encode()).hexdigest()
    path = cache_dir() / "edges" / f"fashion-{tag}-{key[:16]}.pt"
    if path.is_file():
        try:
            e = torch.load(path, weights_only=True)
            if e.shape == x.shape and e.dtype == torch.uint8:
                return e
        except Exception:
            pass
        path.unlink(missing_ok=True)  # a damaged cache is rebuilt, never trusted
    e = edge_maps(x)
    atomic_save(e, path)
    return e


def _pad(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.pad(x, (FASHION_PAD,) * 4)


def _edges2fashion(split: str, unpaired: bool) -> TranslationData:
    from . import load_data

    if split == "val":
        raise UserError("edges2fashion has splits train and test")
    d = load_data("fashion-mnist", split)
    edges = cached_edges(d.x, split)
    A, B, y = _pad(edges), _pad(d.x), d.y
    name = "edges2fashion-unpaired" if unpaired else "edges2fashion"
    if unpaired and split == "train":  # disjoint halves: no article's own edge map is ever in domain A
        n = len(B) // 2
        return TranslationData(A[:n], B[n:], False, name, y[n:], "fashion-mnist", FASHION_PAD)
    return TranslationData(A, B, True, name, y, "fashion-mnist", FASHION_PAD)


# ---------------------------------------------------------------------------------------------- colorize


def _photo_dir() -> Path:
    try:
        import skimage
    except ImportError:
        raise UserError("the colorize task takes its photographs from scikit-image, which is not installed "
                        "(pip install scikit-image)") from None
    return Path(skimage.__file__).parent / "data"


def photo_crops(img: Image.Image, size: int, short_side: int, stride: int) -> np.ndarray:
    """An RGB photograph scaled to `short_side` (bicubic), cut into size x size crops every `stride` pixels:
    uint8 (N, size, size, 3)."""
    w, h = img.size
    s = short_side / min(w, h)
    a = np.asarray(img.convert("RGB").resize((round(w * s), round(h * s)), Image.BICUBIC))
    return np.stack([a[t : t + size, x : x + size] for t in range(0, a.shape[0] - size + 1, stride)
                     for x in range(0, a.shape[1] - size + 1, stride)])


def _colorize(split: str) -> TranslationData:
    if split == "val":
        raise UserError("colorize has splits train and test")
    root = _photo_dir()
    crops = []
    for f in COLORIZE_TRAIN if split == "train" else COLORIZE_TEST:
        with Image.open(root / f) as im:
            crops.append(photo_crops(im, COLORIZE_SIZE, COLORIZE_SHORT_SIDE, COLORIZE_STRIDE[split]))
    rgb = np.concatenate(crops)
    # grayscale as PIL's "L" (ITU-R 601-2 luma), the seeds' grayscale input
    gray = np.stack([np.asarray(Image.fromarray(c).convert("L")) for c in rgb])
    B = torch.from_numpy(rgb).permute(0, 3, 1, 2).contiguous()
    A = torch.from_numpy(gray)[:, None].contiguous()
    return TranslationData(A, B, True, "colorize")


# ---------------------------------------------------------------------------------------------- folders


def _read_images(files: list[Path], where: Path, image_size: int, channels: int, halves: bool = False):
    """Images -> uint8 arrays (H, W, C); halves: each file is A|B side by side -> (A arrays, B arrays)."""
    images = open_images(files)
    gray = [p for p, im in zip(files, images) if is_gray(im)]
    if channels == 0:
        if gray and len(gray) < len(files):
            raise UserError(f"mixed channel counts in {where}: {len(gray)} grayscale and {len(files) - len(gray)} "
                            f"colour images (e.g. {gray[0].name}); set data.channels=1 or 3 to convert them all")
        channels = 1 if gray else 3
    if image_size:
        warn_upscale([(im.size[0] // (2 if halves else 1), im.size[1]) for im in images], image_size, where)
    out_a, out_b = [], []
    for p, im in zip(files, images):
        im = as_8bit(im, p, channels)
        parts = [im]
        if halves:
            w, h = im.size
            if w % 2:
                raise UserError(f"aligned image {p} has odd width {w}: an AB image is A and B side by side, each "
                                "half the width")
            parts = [im.crop((0, 0, w // 2, h)), im.crop((w // 2, 0, w, h))]
        if image_size:  # the authors' load_size: both sides to image_size (aspect not kept), bicubic
            parts = [q.resize((image_size, image_size), Image.BICUBIC) for q in parts]
        arrs = [np.asarray(q, dtype=np.uint8).reshape(q.size[1], q.size[0], channels) for q in parts]
        out_a.append(arrs[0])
        if halves:
            out_b.append(arrs[1])
    return out_a, out_b


def _stack(arrays: list[np.ndarray], where: Path) -> torch.Tensor:
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise UserError(f"images in {where} have mismatched sizes {sorted(s[:2] for s in shapes)[:3]}...; "
                        "set data.image_size to resize them")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _folder(root: Path, split: str, image_size: int, channels: int) -> TranslationData:
    if not root.is_dir():
        raise UserError(f"unknown dataset '{root}': not one of {', '.join(BUILTIN)} and no such folder")
    if any((root / d).is_dir() for d in ("trainA", "trainB", "testA", "testB")):  # unpaired
        da, db = root / f"{split}A", root / f"{split}B"
        for d, other in ((da, db), (db, da)):
            if not d.is_dir():
                raise UserError(f"{root} has {other.name}/ but no {d.name}/ (the unpaired layout is trainA/, trainB/, "
                                "testA/, testB/)")
        A = _stack(_read_images(image_files(da), da, image_size, channels)[0], da)
        B = _stack(_read_images(image_files(db), db, image_size, channels)[0], db)
        return TranslationData(A, B, False, str(root))
    d = root / split
    if not d.is_dir():
        have = [s for s in ("train", "val", "test") if (root / s).is_dir()]
        raise UserError(f"{root} has no {split}/ folder (the aligned layout is train/, val/, test/ of AB images; "
                        f"found: {', '.join(have) or 'none'})")
    a, b = _read_images(image_files(d), d, image_size, channels, halves=True)
    return TranslationData(_stack(a, d), _stack(b, d), True, str(root))


# ---------------------------------------------------------------------------------------------- augmentation


def jitter(batch: dict[str, torch.Tensor], crop: int, flip: bool, paired: bool) -> dict[str, torch.Tensor]:
    """The authors' random crop (to crop x crop; 0 = none) and horizontal flip, per example, from the global RNG
    (restored on resume). A pair shares its crop and flip; unpaired domains draw their own."""
    if not crop and not flip:
        return batch
    out, shared = {}, None
    for k in ("A", "B"):
        x = batch[k]
        n, _, h, w = x.shape
        if shared is None or not paired:
            ct, cw = (crop, crop) if crop else (h, w)
            if ct > h or cw > w:
                raise UserError(f"data.crop_size {crop} is larger than the images ({h}x{w})")
            top = torch.randint(h - ct + 1, (n,)).tolist()
            left = torch.randint(w - cw + 1, (n,)).tolist()
            mirror = (torch.rand(n) < 0.5) if flip else torch.zeros(n, dtype=torch.bool)
            shared = (ct, cw, top, left, mirror)
        ct, cw, top, left, mirror = shared
        if crop:
            x = torch.stack([x[i, :, t : t + ct, s : s + cw] for i, (t, s) in enumerate(zip(top, left))])
        if flip:
            x = torch.where(mirror.to(x.device)[:, None, None, None], x.flip(-1), x)
        out[k] = x
    return {**batch, **out}


def center_crop(x: torch.Tensor, crop: int) -> torch.Tensor:
    """Test-time counterpart of jitter's crop: the central crop x crop."""
    if not crop:
        return x
    h, w = x.shape[-2:]
    t, s = (h - crop) // 2, (w - crop) // 2
    return x[..., t : t + crop, s : s + crop]


def output_names(files: list[Path], root: Path) -> list[str]:
    """A name per input file for its output: the path under `root` without the suffix (sub/a), and where two files
    differ only in their suffix (a.png, a.bmp) the suffix kept in the name (a-png, a-bmp): no result overwrites
    another."""
    stems = [f.relative_to(root).with_suffix("").as_posix() for f in files]
    seen = {s: stems.count(s) for s in stems}
    return [s if seen[s] == 1 else f"{s}-{f.suffix[1:].lower()}" for s, f in zip(stems, files)]


def read_inputs(path: str | Path, channels: int) -> tuple[torch.Tensor, list[str]]:
    """`translate --input`: a folder of images, an .npz of uint8 `images` (N, H, W, C) or one image file ->
    uint8 (N, channels, H, W) and a name per image."""
    p = Path(path)
    if p.suffix == ".npz":
        from . import load_npz

        if not p.is_file():
            raise UserError(f"input file not found: {p}")
        x = load_npz(p)
        names = [f"{i:06d}" for i in range(len(x))]
    elif p.is_dir():
        files = image_files(p)
        arrays = _read_images(files, p, 0, channels)[0]
        x, names = _stack(arrays, p), output_names(files, p)
    elif p.is_file():
        arrays = _read_images([p], p.parent, 0, channels)[0]
        x, names = _stack(arrays, p), [p.stem]
    else:
        raise UserError(f"no such input: {p} (a folder of images, an .npz of images or one image)")
    if x.shape[1] != channels:
        if x.shape[1] == 3 and channels == 1:  # colour to luma, as PIL's "L"
            x = torch.from_numpy(np.stack([np.asarray(Image.fromarray(a).convert("L"))
                                           for a in x.permute(0, 2, 3, 1).numpy()]))[:, None]
        elif x.shape[1] == 1 and channels == 3:
            x = x.repeat(1, 3, 1, 1)
        else:
            raise UserError(f"input images have {x.shape[1]} channels; the network takes {channels}")
    return x.contiguous(), names
