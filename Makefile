# drkit: the two commands are `make demo` and `make test`; both set up what they need.
SHELL := /bin/bash
VENV ?= .venv
# Debian's own python3: its path is readable by the unprivileged user PostgreSQL runs as,
# which executes `drkit wal-push` / `drkit wal-fetch` (a pyenv python under /root is not).
PYTHON_BASE ?= /usr/bin/python3
PY := $(VENV)/bin/python
DEB_PACKAGES := postgresql-15 postgresql-client-15 redis-server redis-tools pgbackrest age zstd prometheus patroni etcd-server \
	python3-venv iproute2 util-linux procps chromium pgbouncer docker.io debootstrap
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
INSTALL_MODE ?= -e
# The suite's workers (pytest-xdist): two keep both CPUs busy while servers start and
# fsync; 0 runs it in this process (tests/conftest.py groups tests per module).
TEST_WORKERS ?= 2

.PHONY: demo test deps system-deps venv lint typecheck layers unit integration bench clean failover-soak failover-figures

demo: deps
	$(VENV)/bin/drkit demo

test: deps lint typecheck layers
	$(PY) -m pytest -q -ra -n $(TEST_WORKERS) --dist loadgroup tests

system-deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml
	[ -x $(PY) ] || $(PYTHON_BASE) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(INSTALL_MODE) '.[dev]'
	touch $@

venv: $(VENV)/.installed

deps: system-deps venv

lint: venv
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

typecheck: venv
	$(VENV)/bin/mypy

layers: venv
	$(VENV)/bin/lint-imports --no-cache

unit: venv
	$(PY) -m pytest -q tests/unit

integration: deps
	$(PY) -m pytest -q tests/integration

bench: deps
	$(PY) bench/base_backup.py

# Not part of `make test`. The failover and Patroni namespace tests RUNS times in a row with
# every CPU kept busy; then the failover figures (RTO median/worst, switchover pause, RPO
# against the real loss) over FIGURES runs. Both need root (ip netns).
RUNS ?= 5
FIGURES ?= 10
failover-soak: deps
	$(PY) tests/soak/failover_soak.py --runs $(RUNS)

failover-figures: deps
	DRKIT_FIGURES=$(FIGURES) $(PY) -m pytest -q -s -p no:cacheprovider tests/integration/test_failover_figures.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
