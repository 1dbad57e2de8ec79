"""The stand-in API modules (jsmp.kaggle.standin): this folder first on sys.path makes `kaggle_evaluation` and
`janestreet` importable under their Kaggle names, and nothing else."""
