# Both `run` and `test` create or refresh .venv themselves, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench wrk schema migrations clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[postgres,test,bench]'
	# merkletools is a benchmark peer only; its pysha3 requirement does not build on 3.10+.
	$(BIN)/pip install -q --no-deps 'merkletools>=1.0.3'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/hub serve --demo

# Two workers: the tests wait on child processes, sockets and databases more than on the
# CPU. `--dist load` hands tests out in collection order, so each worker still runs the
# browser tests last (tests/conftest.py). TEST_WORKERS=0 runs the suite in one process.
# Bytecode caches (gitignored) spare each worker, and each `hub` process a test starts,
# compiling the project again; an environment with PYTHONDONTWRITEBYTECODE set would
# double the time collection alone takes. Scratch directories go to /dev/shm where there
# is one (Debian 13 and Fedora put /tmp there too): the tests are about the hub, not this
# disk's fsync, which costs the small SQLite tests more than their work does.
TEST_WORKERS ?= 2
TEST_TMPDIR ?= $(shell [ -d /dev/shm ] && [ -w /dev/shm ] && echo /dev/shm || echo "$${TMPDIR:-/tmp}")

test: $(STAMP)
	env -u PYTHONDONTWRITEBYTECODE TMPDIR=$(TEST_TMPDIR) $(BIN)/python -m pytest -q \
	  -p no:cacheprovider -n $(TEST_WORKERS) --dist load

SOURCES := $(wildcard hub schema adapters common tests bench)

lint: $(STAMP)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/mypy

# The proof figure needs a load generator faster than the hub: Debian's wrk (C, one event
# loop). Without it bench falls back to an httpx client that saturates first.
bench: $(STAMP) wrk
	$(BIN)/python bench/run.py $(BENCH_ARGS)

wrk:
	@command -v wrk >/dev/null 2>&1 || { \
	  echo "make bench: installing wrk (apt-get install wrk)"; \
	  if [ "$$(id -u)" != 0 ]; then echo "make bench: run as root, or install wrk first" >&2; exit 1; fi; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null 2>&1 || { \
	    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null; }; }

schema: $(STAMP)
	$(BIN)/python -m schema.export

migrations: $(STAMP)
	$(BIN)/tortoise -c hub.store.db.MIGRATIONS_CONFIG makemigrations

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
