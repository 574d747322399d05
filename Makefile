# Two commands on a fresh machine: `make validate` (the main job) and `make test`. Each sets up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# The arrays are tiny: BLAS/OpenMP worker threads only stall, and pytest-xdist already runs one process per core.
export OPENBLAS_NUM_THREADS ?= 1
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1

.PHONY: setup validate test test-thorough bench soak mutation clean

setup: $(VENV)/.installed

# constraints.txt pins torch==2.13.0: here it resolves to a CPU build on this machine's disk (pyproject.toml only
# states the supported range). Editable, so the repository's edits are live; tests/test_packaging.py checks the
# non-editable install from a separate project.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,plots,jax]'
	touch $@

validate: setup
	$(PY) -m cnn_gradcheck validate

test: setup
	$(PY) -m pytest -n auto $(PYTEST_ARGS)

test-thorough: setup
	CNN_GRADCHECK_PROFILE=thorough $(PY) -m pytest -n auto $(PYTEST_ARGS)

# Not part of `make test`: the harness's check against torch.autograd.gradcheck (docs/benchmark.md); 1e2 to 1e6 elements, about 4 minutes.
# benchmarks.overhead: the harness's fixed overhead per case at 1e2 elements (issue 16's 0.3 ms); about a minute.
bench: setup
	$(PY) -m benchmarks.bench_gradcheck
	$(PY) -m cnn_gradcheck.throughput
	$(PY) -m benchmarks.plugin_startup
	$(PY) -m benchmarks.overhead

# Not part of `make test`: the thorough profile over every op (its reference through every oracle) under several
# seeds, counting false alarms; 100,000 examples take about half an hour of CPU. `make soak SOAK_EXAMPLES=50`: seconds.
SOAK_EXAMPLES ?= 100000
SOAK_SEEDS ?= 5
soak: setup
	$(PY) -m cnn_gradcheck.soak --examples $(SOAK_EXAMPLES) --seeds $(SOAK_SEEDS)

# Not part of `make test`: mutation testing of reference/ and the verdict-making core of checks/ (tools/mutation.py,
# docs/mutation.md). Every mutant takes seconds: MUTATION_ARGS="--sample 15" for a quick estimate.
MUTATION_ARGS ?=
mutation: setup
	$(PY) tools/mutation.py $(MUTATION_ARGS)

clean:
	rm -rf $(VENV) .hypothesis .pytest_cache
