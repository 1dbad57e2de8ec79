"""The Kaggle last mile (docs/kaggle.md): bundle.py (`jsmp kaggle bundle`: runs, wheels and a submission.py in
one folder to upload as a dataset), wheels.py (the wheels it holds), serve.py (what submission.py runs: the
bundle's Predictor behind the 2024 inference server or the 2021 `janestreet` loop), standin/ (stand-ins for
the scoring APIs, for tests and `jsmp kaggle dryrun`), cli.py (`jsmp kaggle ...`)."""

DATA_ENV = "JSMP_KAGGLE_DATA"  # the competition folder, if not Kaggle's (serve.py; the stand-ins read it too)
