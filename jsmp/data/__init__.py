"""Stage 1, raw data -> store: the Kaggle schema, the CSV/Parquet reader, ingest, the synthetic
generator and the `python -m jsmp.data` command (docs/ingest.md)."""
