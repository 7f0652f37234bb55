"""The training loop: fit.py (train(), the loop body), setup.py (build from named steps), step.py (phases,
schedules), state.py (TrainState, EMA), stopping.py (signals, budget, patience), rundir.py (lock, prepare, guard),
writer.py (rows, TensorBoard, progress). Side jobs live in counterfeit.hooks."""

from .fit import RunResult, fit, train
from .rundir import RESUMABLE_KEYS, RunLock, guard_run_dir
from .setup import Loop, build
from .state import TrainState, update_ema
from .step import linear_decay, lr_at, momentum_at, run_step, set_hparams

__all__ = ["Loop", "RESUMABLE_KEYS", "RunLock", "RunResult", "TrainState", "build", "fit", "guard_run_dir",
           "linear_decay", "lr_at", "momentum_at", "run_step", "set_hparams", "train", "update_ema"]
