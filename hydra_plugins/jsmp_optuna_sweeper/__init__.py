"""A Hydra sweeper for current Optuna (>= 4): resumable, failure-tolerant, pruning, parallel.

Select it with `override /hydra/sweeper: jsmp_optuna` (see config.py for its keys, which are
the official hydra-optuna-sweeper's plus pruner/heartbeat/threads). Why not the official plugin:
PyPI's hydra-optuna-sweeper 1.3.0 pins optuna<3, and that Optuna's SQLite RDBStorage fails
under SQLAlchemy 2 (an AssertionError), so its studies cannot be stored, hence not resumed;
it also never hands the trial to the job, so a job cannot report epochs and be pruned.
"""
