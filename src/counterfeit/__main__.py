"""`python -m counterfeit ...` (and `torchrun -m counterfeit ...`): the same as the `counterfeit` command."""

import sys

from .cli.__main__ import main

sys.exit(main())
