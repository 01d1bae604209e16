# Unified Generative Models: make lab | make test | make course | make bench | make checkpoints | make exercises
# Everything runs inside .venv, created on first use from the pins in requirements.lock.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
export UNIGM_PROFILE ?= quick

.PHONY: lab test course bench checkpoints exercises notebooks kernel clean

$(INSTALLED): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

notebooks: $(INSTALLED)  ## lectures/*.py -> lectures/*.ipynb (paired with jupytext)
	$(VENV)/bin/jupytext --sync lectures/[0-9][0-9]_*.py

kernel: $(INSTALLED)  ## register the venv as the Jupyter kernel "Python (unigm)"
	$(PY) -m ipykernel install --user --name unigm --display-name "Python (unigm)"

lab: notebooks kernel  ## open JupyterLab on the lectures
	$(VENV)/bin/jupyter lab lectures/ $(LAB_ARGS)

test: $(INSTALLED)  ## library tests, then every lecture executed with nbval (quick profile)
	rm -rf build/test-notebooks
	$(PY) -m unigm.course.cli notebooks --out build/test-notebooks
	rm -f build/gates-asserted.jsonl
	UNIGM_GATE_LOG=$(CURDIR)/build/gates-asserted.jsonl $(PY) -m pytest tests build/test-notebooks --nbval-lax --nbval-current-env --nbval-cell-timeout=900 -p no:cacheprovider --durations=20 --junitxml=build/junit.xml

course: $(INSTALLED)  ## execute every lecture headless into build/executed (+ HTML, build/timings.json)
	$(PY) -m unigm.course.cli course --out build

bench: $(INSTALLED)  ## the zoo on the 2D datasets -> build/bench.json; every image model on the digits (MNIST with UNIGM_PROFILE=full) -> build/bench_images.json, results/ (read by lecture 04); the fast samplers -> build/bench_samplers.json
	$(PY) -m unigm.bench --out build --readme README.md
	if [ "$(UNIGM_PROFILE)" = quick ]; then \
	  $(PY) -m unigm.bench images --out build --readme README.md && mkdir -p results && cp build/bench_images.json results/; \
	else $(PY) -m unigm.bench images --out build; fi  # the full profile (MNIST) leaves the committed digits results alone
	$(PY) -m unigm.bench samplers --out build

checkpoints: $(INSTALLED)  ## train the image models lectures load -> checkpoints/ (safetensors, provenance, manifest)
	$(PY) -m unigm.course.checkpoints make

exercises: $(INSTALLED)  ## regenerate exercises/*.py (student versions) from solutions/*.py
	$(VENV)/bin/unigm-grade release solutions/[0-9][0-9]_*.py --out exercises

clean:
	rm -rf build .pytest_cache lectures/*.ipynb
