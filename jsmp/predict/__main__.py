"""`python -m jsmp.predict --run RUN_DIR --data TEST.csv --out submission.csv [--batch]` (jsmp.predict.cli)."""

import sys

from jsmp.predict.cli import main

sys.exit(main())
