"""A torchrun worker for the distributed tests: trains each run of a spec file in one process group, then checks
that every parameter and buffer of every network is the same on every rank (an all-gather of each tensor).

    torchrun --standalone --nproc-per-node=2 tests/dist/worker.py SPEC.json RESULT.json

SPEC: [{"name", "preset", "overrides": [...], "out"}]; RESULT (rank 0): {name: {"max_diff", "differing",
"tensors", "step", "control_diff"}}. control_diff is the same check after rank 1 nudges one weight by 1e-3, so the
check is shown to see a difference when there is one.
"""

import json
import os
import sys

import torch
import torch.distributed as tdist

from counterfeit import config, dist
from counterfeit.loop import train


def cross_rank_diff(nets: dict, nudge: bool = False) -> tuple[float, list[str], int]:
    worst, differing, n = 0.0, [], 0
    for name, m in sorted(nets.items()):
        for key, t in sorted(m.state_dict().items()):
            t = t.detach().clone()
            if nudge and tdist.get_rank() == 1 and n == 0 and t.is_floating_point():
                t.view(-1)[0] += 1e-3
            out = [torch.empty_like(t) for _ in range(tdist.get_world_size())]
            tdist.all_gather(out, t)
            diff = max(float((o.double() - out[0].double()).abs().max()) if t.numel() else 0.0 for o in out)
            if diff > 0 or not all(torch.equal(o, out[0]) for o in out):
                differing.append(f"{name}.{key}")
            worst, n = max(worst, diff), n + 1
    return worst, differing, n


def main(spec_path: str, result_path: str) -> int:
    d = dist.setup("cpu")
    results = {}
    for run in json.loads(open(spec_path).read()):
        cfg = config.load_config(run["preset"], run["overrides"])
        res = train(cfg, run["out"], progress=False)
        worst, differing, n = cross_rank_diff(res.nets)
        control = cross_rank_diff(res.nets, nudge=True)[0]
        results[run["name"]] = {"max_diff": worst, "differing": differing[:10], "tensors": n, "step": res.step,
                                "control_diff": control}
    if d.main:
        open(result_path, "w").write(json.dumps(results, indent=1))
    dist.teardown(d)
    return 0


if __name__ == "__main__":
    code = main(*sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # as counterfeit.cli.__main__.run: no interpreter teardown after the process group is gone
