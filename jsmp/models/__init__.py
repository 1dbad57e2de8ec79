"""Stage 4, models: LightningModules that give each row (or window) a trade probability."""
