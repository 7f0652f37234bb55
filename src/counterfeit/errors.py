"""The exceptions that end a command with one line on stderr instead of a traceback, and their exit codes.

    0    done
    2    UserError: bad input from a user (unknown name, wrong type, missing/corrupt file, bad checkpoint...);
         nothing was written or changed
    3    Diverged: training produced non-finite losses, weights or buffers; stopped before a poisoned checkpoint,
         the last good checkpoint is kept
    4    PeerLost: under torchrun, another process of the training died or stopped answering; torchrun restarts
         them all under --max-restarts, and they go on from the last checkpoint
    130  Interrupted by SIGINT (Ctrl-C), 143 by SIGTERM: the current step finished and a checkpoint was written
         (`--resume` continues exactly); a second signal stops at once, with the last periodic checkpoint kept
Anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input from the user: unknown name, wrong type, missing/corrupt file, bad checkpoint..."""

    exit_code = 2


class TrainingStopped(Exception):
    """Training ended early for a reason that is not the user's input."""

    exit_code = 1


class Diverged(TrainingStopped):
    exit_code = 3


class Interrupted(TrainingStopped):
    def __init__(self, message: str, exit_code: int = 130):
        super().__init__(message)
        self.exit_code = exit_code


class PeerLost(TrainingStopped):
    exit_code = 4
