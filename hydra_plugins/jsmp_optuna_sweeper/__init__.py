"""A Hydra sweeper for current Optuna (>= 4): resumable, failure-tolerant, pruning, parallel.

Select it with `override /hydra/sweeper: jsmp_optuna`, or by the official hydra-optuna-sweeper's
names (`optuna`, its `_target_`: hydra_plugins/hydra_optuna_sweeper), so search files written for
that plugin run unchanged (see config.py for its keys, which are the official plugin's plus
pruner/heartbeat/threads; docs/sweeps.md for what differs). Why not the official plugin:
PyPI's hydra-optuna-sweeper 1.3.0 pins optuna<3, and that Optuna's SQLite RDBStorage fails
under SQLAlchemy 2 (an AssertionError), so its studies cannot be stored, hence not resumed;
it also never hands the trial to the job, so a job cannot report epochs and be pruned.

Contract with a training job (see docs/sweeps.md; jsmp/run/pruning.py is jsmp's side). Each
job gets the trial's params as overrides, plus `optuna_trial.{study, storage, engine_kwargs,
id, number, threads}`: the study name, its storage URL (never a password: for PostgreSQL it
is in PGPASSWORD, which the sweeper sets for its jobs) with the engine kwargs to open it,
`optuna.storages.RDBStorage(storage, engine_kwargs=...)`, the trial's id and number, and the
torch threads to use. The job may report to `optuna.trial.Trial(study, id)` and raise
`optuna.TrialPruned`; it returns the objective (a float; a list for several directions).
The sweeper records COMPLETE, PRUNED, or FAIL (an exception, NaN). The plugin imports
Hydra, Optuna, OmegaConf, SQLAlchemy and the standard library only, never jsmp.

The package also holds `hydra/sweeper: jsmp_basic` (basic.py), jsmp's sweeper for `-m`: Hydra's
basic sweeper whose failed jobs end the multirun in one line (jobs.py: what both report of a job).
"""
