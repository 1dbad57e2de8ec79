"""`python -m jsmp COMMAND ...`: the `jsmp` console script (jsmp/cli.py)."""

import sys

from jsmp.cli import main

sys.exit(main())
