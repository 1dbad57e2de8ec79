# jsmp: every target creates the virtual environment it needs.
#
# TORCH picks the PyTorch build. The default is the CPU build, small and fast to install.
# With an NVIDIA GPU:  make install TORCH=torch   (pip's default build ships CUDA)
PYTHON ?= python3
TORCH  ?= torch==2.13.0
VENV   := .venv
BIN    := $(VENV)/bin
ARGS   ?=
BENCH  ?= --help
STAMP  := $(VENV)/.installed
# pytest-xdist workers for `make test` (on 2 cores 2 workers cut the suite from 18.6 to 10.1 min, 2026-11-28)
TEST_JOBS ?= 2
STUDY  ?= mlp
# logs/ (runs, sweeps) live under $JSMP_ROOT when it is set, as for train.py and jsmp (docs/install.md)
LOGS   := $(or $(JSMP_ROOT),.)/logs
STORAGE ?= sqlite:///$(LOGS)/train/sweeps/$(STUDY)/optuna.db

.PHONY: install train tune test test-slow lint postgres-server bench tensorboard dashboard clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev,postgres,mlflow,wandb,launchers]"   # the optional extras too: their tests run
	touch $(STAMP)

# PostgreSQL's server binaries (initdb, pg_ctl), which tests/sweeper/test_postgres.py starts a server with;
# installed with apt as root (CI), else named for the user (the tests skip without them)
postgres-server:
	@command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	  else echo "note: the PostgreSQL tests need its server (initdb): sudo apt-get install postgresql" >&2; fi

train: $(STAMP)       ## train the default MLP on the built-in synthetic data (make train ARGS="model=lstm")
	$(BIN)/python train.py $(ARGS)

tune: $(STAMP)        ## hyper-parameter search (make tune ARGS="model=mlp hydra.sweeper.n_trials=100")
	$(BIN)/python tune.py $(ARGS)

test: $(STAMP)        ## the fast test suite (CI runs this), on TEST_JOBS pytest-xdist workers
	$(BIN)/python -m pytest -q -m "not slow" -n $(TEST_JOBS)

test-slow: $(STAMP) postgres-server ## tests that take minutes (PostgreSQL sweeps included)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)        ## ruff (rules in pyproject.toml)
	$(BIN)/ruff check .

bench: $(STAMP)       ## benchmarks: make bench BENCH=ingest
	$(BIN)/python -m jsmp.bench $(BENCH)

tensorboard: $(STAMP) ## TensorBoard over every run in logs/ ($JSMP_ROOT/logs when set)
	$(BIN)/tensorboard --logdir $(LOGS)

dashboard: $(STAMP)   ## optuna-dashboard on a sweep's study under $JSMP_ROOT/logs or logs/ (make dashboard STUDY=lstm, or STORAGE=postgresql://...)
	test -x $(BIN)/optuna-dashboard || $(BIN)/python -m pip install -q -e ".[dashboard]"
	$(BIN)/optuna-dashboard $(STORAGE)

clean:                ## remove the venv, generated data and runs
	rm -rf $(VENV) data logs outputs multirun .pytest_cache *.egg-info
