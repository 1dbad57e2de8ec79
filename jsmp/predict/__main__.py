"""`python -m jsmp.predict --run RUN_DIR --data TEST.csv --out submission.csv [--batch]`."""

import sys

from jsmp.predict import main

sys.exit(main())
