"""`python -m jsmp.evaluate --run RUN [--run RUN2 ...] [--data STORE|CSV] [--fold K] [--out DIR]` (jsmp.evaluate.cli)."""

import sys

from jsmp.evaluate.cli import main

sys.exit(main())
