"""Stand-in for Kaggle's `kaggle_evaluation` package (jsmp.kaggle.standin)."""
