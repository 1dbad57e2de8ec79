"""Train a jsmp model: `python train.py model=mlp data.frac=0.5 trainer.max_epochs=2`.

The same as `jsmp train ...` (jsmp/run/cli.py), except for the project root: data/ and logs/
go under $JSMP_ROOT if set, else under this clone (not the working directory), wherever the
command is run from. Every setting lives in conf/ (see `python train.py --help`).
`python train.py +best=SWEEP_DIR/best.yaml` replays a hyper-parameter sweep's best trial (see tune.py).
"""

import sys
from pathlib import Path

from jsmp.run.cli import train_main

if __name__ == "__main__":
    train_main(sys.argv[1:], root=Path(__file__).resolve().parent)
