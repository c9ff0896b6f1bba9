# The two commands of the README: `make run` (the main job) and `make test` (the test suite).
# Both install what they need on a fresh machine first (scripts/setup.sh).
.PHONY: setup run test test-all bench soak clean

ARGS ?=

setup:
	@bash scripts/setup.sh

# The viewer where there is a display; otherwise the headless fly-through with the CPU (or GPU) preset.
run: setup
	.venv/bin/n2n-live $(ARGS)

# `make test` leaves out the tests marked slow (each repeats, at a larger scale, what a fast test covers);
# `make test-all` runs them too. Two workers (pytest-xdist): the project's machines have 2 cores and each test
# runs torch on one thread (tests/conftest.py). N2N_TEST_CPU=1 prints each test's CPU seconds. The tests marked
# numeric run a second time on torch's portable kernels: users' CPUs (AVX-512, AVX2, ARM) sum in other orders.
test: setup
	.venv/bin/python -m pytest -q -n 2 -m "not slow" $(ARGS)
	ATEN_CPU_CAPABILITY=default .venv/bin/python -m pytest -q -n 2 -m "numeric and not slow" $(ARGS) || [ $$? -eq 5 ]

test-all: setup
	.venv/bin/python -m pytest -q -n 2 $(ARGS)

bench: setup
	.venv/bin/n2n-bench $(ARGS)

# Long runs: resident memory over 10,000 headless and 2,000 viewer frames (and scene switches); see docs/benchmarks.md.
soak: setup
	nice -n 10 .venv/bin/python scripts/soak.py $(ARGS)

clean:
	rm -rf .venv out .pytest_cache
