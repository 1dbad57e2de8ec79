"""LightningModules: every model predicts a trade probability per row."""
