"""Data: the synthetic generator, the store, splits and the DataModules."""
