"""`counterfeit` entry point: dispatches to one module per subcommand.

Each subcommand module has build_parser(sub) and run(args). Bad user input (UserError) ends with one line on
stderr and exit code 2; divergence (3) and signals (130 / 143) likewise end in one line (errors.py lists the codes);
nothing else is swallowed.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..checkpoint import write_failure
from ..errors import TrainingStopped, UserError
from . import classifier, evaluate, figure1, invert, presets, report, sample, train, translate
from . import config as config_cmd
from . import export as export_cmd

COMMANDS = {"train": train, "sample": sample, "evaluate": evaluate, "presets": presets, "config": config_cmd,
            "export": export_cmd,
            "classifier": classifier, "figure1": figure1, "report": report, "translate": translate,
            "invert": invert}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: one line + usage hint, exit 2
        raise UserError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="counterfeit", description="Train, evaluate and look inside GANs.")
    from .. import __version__

    p.add_argument("--version", action="version", version=f"counterfeit {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, mod in COMMANDS.items():
        mod.build_parser(sub.add_parser(name, help=mod.__doc__.strip().splitlines()[0], description=mod.__doc__))
    return p


def _say(e: Exception, line: str) -> None:
    # under torchrun an outcome rank 0 shared with every rank (dist.Dist.run_on_rank0) is said once, by rank 0
    if not (getattr(e, "from_rank0", False) and os.environ.get("RANK", "0") != "0"):
        print(line, file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)  # as typed (train --nproc hands it to torchrun)
        return COMMANDS[args.command].run(args) or 0
    except UserError as e:
        _say(e, f"counterfeit: error: {e}")
        return 2
    except TrainingStopped as e:
        _say(e, f"counterfeit: stopped: {e}")
        return e.exit_code
    except BrokenPipeError:  # the reader left (`counterfeit config | head`): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own flush at exit must not fail
        return 0
    except OSError as e:  # writing an output into a full disk or a read-only folder: one line; other OSErrors are bugs
        err = write_failure(e)
        if err is None:
            raise
        print(f"counterfeit: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("counterfeit: interrupted", file=sys.stderr)
        return 130


def run() -> None:
    """The process entry point (`counterfeit`, `python -m counterfeit`). A torchrun worker leaves with os._exit once
    its process group is gone: at interpreter teardown a background thread of torch.distributed's store could
    outlive its owner and abort the process ("terminate called without an active exception", exit -6) after a
    run had finished and been written."""
    code = main()
    if os.environ.get("WORLD_SIZE", "1") != "1":
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
