"""Stage 3, store -> batches: date splits, NaN fills, labels, windows and the LightningDataModule
that gathers each batch from the store by index (docs/sequence-models.md for windows)."""
