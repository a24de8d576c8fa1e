# The two commands a newcomer needs: `make demo` and `make test`. Both set everything up first.
PY := .venv/bin/python

.PHONY: setup demo test lint typecheck unit bench protos clean fuzz

protos: setup
	bash scripts/gen_protos.sh

setup:
	@bash scripts/setup.sh

demo: setup
	$(PY) scripts/demo.py

lint: setup
	bash scripts/gen_protos.sh --check
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .
	.venv/bin/lint-imports

typecheck: setup
	$(PY) -m mypy

unit: setup
	$(PY) -m pytest -q

test: lint typecheck unit

bench: setup
	$(PY) bench/verify_core.py
	$(PY) bench/registry_verify.py
	$(PY) bench/daemon.py
	$(PY) bench/hostile_memory.py
	$(PY) bench/pull.py

# Coverage-guided fuzzing of every registry-response parser (fuzz/README.md): FUZZ_SECONDS per target
# (FUZZ_RUNS: also stop a target after that many executions). Needs atheris, installed here.
FUZZ_SECONDS ?= 60
FUZZ_RUNS ?=
fuzz: setup
	$(PY) -m pip install -q -c constraints.txt -e '.[fuzz]'
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_RUNS=$(FUZZ_RUNS) $(PY) -m fuzz.run

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache .fuzz

# Debian package: dist/pullgate_<version>_<arch>.deb (packaging/build-deb.sh; see packaging/README.md).
DEB_PYTHON ?= /usr/bin/python3.11
.PHONY: deb
deb:
	DEB_PYTHON=$(DEB_PYTHON) bash packaging/build-deb.sh
