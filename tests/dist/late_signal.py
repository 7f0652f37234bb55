"""A torchrun worker that has rank 1 take a SIGTERM at the worst moment: as the step's stop agreement (an all-reduce)
returns, after both ranks put in "no signal". A signal caught there must count at the next step on every rank; a
rank that acted on it at once would run the stop's hooks and collectives alone, and the job would hang.

    torchrun --standalone --nproc-per-node=2 tests/dist/late_signal.py PRESET OUT RESULT_DIR AT_STEP [overrides...]

Each rank writes RESULT_DIR/rank-R.json: {"stopped": the Interrupted message or null, "code", "step"}.
"""

import signal
import sys

from counterfeit import dist
from stopped_run import leave, train_and_report


def main(preset: str, out: str, result_dir: str, at_step: str, *overrides: str) -> int:
    agreements = [0]
    real = dist.Dist.max_over_ranks

    def max_over_ranks(self, values):
        got = real(self, values)
        agreements[0] += 1
        if self.rank == 1 and agreements[0] == int(at_step):
            signal.raise_signal(signal.SIGTERM)  # its handler runs before the loop reads the agreement
        return got

    dist.Dist.max_over_ranks = max_over_ranks
    return train_and_report(preset, out, result_dir, overrides)


if __name__ == "__main__":
    leave(main(*sys.argv[1:]))
