# advlens: two commands do everything on a fresh machine.
#   make reproduce   run every notebook on the default (laptop) preset, writing figures/
#   make test        the test suite (unit tests + every notebook on the smoke preset)
#   make book        the rendered book (out/book) · make lab: JupyterLab on the notebooks
# Both create and reuse .venv in the repository root.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.advlens-installed
PEERS  := .peers
PEERS_STAMP := $(PEERS)/.installed
# Peers for parity tests and benchmarks only: installed apart, never project dependencies.
PEER_PKGS := foolbox==3.3.4 eagerpy==0.30.0 torch-cka==0.21 torchattacks==3.5.1 adv-lib==0.2.8
PRESET ?= laptop

.PHONY: venv peers test reproduce smoke sweep lint bench mutate clean-venv book verify readme lab

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

venv: $(STAMP)

$(PEERS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --target $(PEERS) $(PEER_PKGS)
	@touch $@

peers: $(PEERS_STAMP)

test: $(STAMP) $(PEERS_STAMP)
	$(PY) -m ruff check lib tests benchmarks notebooks
	$(PY) -m pytest -n 2 --dist loadgroup --durations=8

# reproduce: run notebooks 00-04 into figures/ (05, the seed sweep, is `make sweep`), regenerate README's findings from them, build
# the book, then compare the tables with the committed ones (exit 1 if a verdict flipped)
reproduce: $(STAMP)
	$(PY) -m advlens run --preset $(PRESET) --only 00 01 02 03 04
	$(PY) -m advlens readme
	$(PY) -m advlens book
	$(PY) -m advlens verify

# the static HTML book (out/book/index.html) from the executed notebooks in RUN (default figures/)
RUN ?= figures
book: $(STAMP)
	$(PY) -m advlens book --run $(RUN)

verify: $(STAMP)
	$(PY) -m advlens verify $(RUN)

readme: $(STAMP)
	$(PY) -m advlens readme

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks

smoke: $(STAMP)
	$(PY) -m advlens run --preset smoke --out out/smoke

# seed sweep: notebook 05 reruns notebooks 01-03 (those present) over seeds (laptop: 0 1 2, each
# with its own retrained zoo) and summarises them; SEEDS='[0, 1]' / NOTEBOOKS='["01"]' override
sweep: $(STAMP)
	$(PY) -m advlens run --preset $(PRESET) --only 05 --out out/sweep-$(PRESET) \
		$(if $(SEEDS),-p seeds '$(SEEDS)') $(if $(NOTEBOOKS),-p sweep_notebooks '$(NOTEBOOKS)')

lint: $(STAMP)
	$(PY) -m ruff check lib tests benchmarks notebooks

bench: $(STAMP) $(PEERS_STAMP)
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

# Mutation testing of the kernels (cka, inversion, features, stats, alignment, transfer) against
# their fast tests: on demand only, never in CI; MUTANTS per module (0 = all), MODULES instead of
# the kernels (e.g. MODULES='presets findings sweep papers.liang2021'), report in
# benchmarks/results/.
MUTANTS ?= 12
mutate: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) benchmarks/mutate.py --per-module $(MUTANTS) $(if $(MODULES),--modules $(MODULES))

clean-venv:
	rm -rf $(VENV) $(PEERS)
