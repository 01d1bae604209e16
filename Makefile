# Unified Generative Models: make lab | make test | make course | make site | make slides | make browser-test
#                            make bench | make checkpoints | make exercises
# Everything runs inside .venv, created on first use from the pins in requirements.lock.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
export UNIGM_PROFILE ?= quick

.PHONY: lab test course site slides browser-test browser-deps bench checkpoints exercises notebooks kernel clean

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

test: $(INSTALLED)  ## library tests, every lecture executed with nbval (quick profile; kept in build/executed), the mutation check, then the site, the slides and the browser test
	rm -rf build/test-notebooks build/executed build/timings.json
	$(PY) -m unigm.course.cli notebooks --out build/test-notebooks
	rm -f build/gates-asserted.jsonl
	UNIGM_GATE_LOG=$(CURDIR)/build/gates-asserted.jsonl $(PY) -m pytest tests build/test-notebooks --ignore=tests/browser --nbval-lax --nbval-current-env --nbval-cell-timeout=900 -p no:cacheprovider -p unigm.course.nbrecord --executed-out build/executed --durations=20 --junitxml=build/junit.xml
	OMP_NUM_THREADS=1 $(PY) tests/mutations.py
	$(MAKE) --no-print-directory browser-test

course: $(INSTALLED)  ## execute every lecture headless into build/executed (+ HTML, build/timings.json)
	$(PY) -m unigm.course.cli course --out build

site: $(INSTALLED)  ## static HTML site (lectures as executed, exercises, README, course map, slides) -> build/site; offline
	test -d build/executed || $(MAKE) --no-print-directory course
	$(PY) -m unigm.course.site site --out build/site

slides: $(INSTALLED)  ## reveal.js slides of every lecture -> build/slides (offline: reveal.js and MathJax copied in)
	test -d build/executed || $(MAKE) --no-print-directory course
	$(PY) -m unigm.course.site slides --out build/slides

browser-deps:  ## Debian's chromium for the browser test, installed when missing (needs root or sudo and apt)
	@if [ -z "$$UNIGM_CHROMIUM" ] && ! command -v chromium >/dev/null 2>&1; then \
	  echo "installing Debian's chromium (the browser test drives it)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null; \
	fi

browser-test: $(INSTALLED) browser-deps site  ## JupyterLab + headless Chromium: lecture 00 run by a student, the site and slides offline -> build/screenshots
	$(PY) -m pytest tests/browser -s -p no:cacheprovider --junitxml=build/junit-browser.xml

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
