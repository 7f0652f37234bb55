"""Export a run's generator(s) as safetensors, TorchScript or ONNX, beside a JSON of how to call them."""

from __future__ import annotations


def build_parser(p):
    p.add_argument("run", help="run dir (latest checkpoint) or checkpoint file")
    p.add_argument("--format", default="safetensors", choices=["safetensors", "torchscript", "onnx"],
                   help="safetensors (weights; counterfeit.load reads them back), torchscript or onnx (run without "
                        "counterfeit); default safetensors")
    p.add_argument("--out", required=True, help="a new (or empty) folder")
    return p


def run(args) -> int:
    from ..api import Run
    from ..export import SPEC, export

    run = Run(args.run)
    out = export(run, args.out, args.format)
    names = ", ".join(p.name for p in sorted(out.iterdir()) if p.name != SPEC)
    print(f"{args.format} export of {run.path} (step {run.step}) -> {out}: {names}, {SPEC}")
    return 0
