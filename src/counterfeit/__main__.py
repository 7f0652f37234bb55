"""`python -m counterfeit ...` (and `torchrun -m counterfeit ...`): the same as the `counterfeit` command."""

from .cli.__main__ import run

run()
