"""Stage 5, a run: the training recipe, its callbacks, run-dir rules and the glue to Hydra."""
