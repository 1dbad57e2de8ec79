"""A stand-in for the Kaggle scoring APIs, for tests and local dry runs of a bundle's submission.py
(docs/kaggle.md). The real modules are not on PyPI; these follow their documented protocol.

Its api/ folder (PATH) put first on sys.path makes `import kaggle_evaluation.jane_street_inference_server`
(2024: JSInferenceServer(predict) with serve() / run_local_gateway((test, lags))) and `import janestreet`
(2021: make_env() / iter_test() / predict()) resolve to the stand-ins. Both serve the competition
folder named by $JSMP_KAGGLE_DATA (serve() and make_env() read it; run_local_gateway takes its paths)
and write their submission into the working directory (gateway.py: the checks they make).
`dry_run(bundle, data, work)` runs a bundle's submission.py against them in this process.
"""

from __future__ import annotations

import os
import runpy
import sys
from contextlib import contextmanager
from pathlib import Path

from jsmp.kaggle import DATA_ENV
from jsmp.kaggle.standin.gateway import SUBMISSIONS

PATH = Path(__file__).resolve().parent / "api"  # the folder that holds them under their Kaggle names
MODULES = ("kaggle_evaluation", "janestreet")  # the top-level names the stand-ins take


@contextmanager
def standing_in(data: str | os.PathLike):
    """Within: `import kaggle_evaluation` / `import janestreet` give the stand-ins, serving competition
    folder `data`; sys.path, sys.modules and the environment are put back on exit."""
    saved_path, saved_env = list(sys.path), os.environ.get(DATA_ENV)
    saved = {k: v for k, v in sys.modules.items() if k.split(".")[0] in MODULES}
    for k in saved:
        del sys.modules[k]
    sys.path.insert(0, str(PATH))
    os.environ[DATA_ENV] = str(Path(data).resolve())
    try:
        yield
    finally:
        sys.path[:] = saved_path
        for k in [k for k in sys.modules if k.split(".")[0] in MODULES]:
            del sys.modules[k]
        sys.modules.update(saved)
        if saved_env is None:
            os.environ.pop(DATA_ENV, None)
        else:
            os.environ[DATA_ENV] = saved_env


def dry_run(bundle: str | os.PathLike, data: str | os.PathLike, work: str | os.PathLike) -> Path:
    """Run `bundle`/submission.py as a notebook does, against the stand-ins serving competition folder `data`,
    in working directory `work` (created); returns the submission it wrote there."""
    script, work = Path(bundle).resolve() / "submission.py", Path(work)
    work.mkdir(parents=True, exist_ok=True)
    for name in SUBMISSIONS:
        (work / name).unlink(missing_ok=True)
    here = os.getcwd()
    with standing_in(data):
        os.chdir(work)  # (contextlib.chdir is Python 3.11+; jsmp supports 3.10)
        try:
            runpy.run_path(str(script), run_name="__main__")
        finally:
            os.chdir(here)
    (written,) = [work / name for name in SUBMISSIONS if (work / name).is_file()]
    return written
