# musiclime: the two commands a newcomer needs are `make demo` and `make test`.
# Both create .venv/ (if missing) and install everything into it first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.musiclime-installed
CORES  ?= 2

.PHONY: setup system-deps demo test test-fast lint bench clean-results

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	# tinysoundfont renders the demo's General MIDI stems; its pyaudio dependency (PortAudio
	# headers) is only for live playback, so it is installed without dependencies.
	$(PY) -m pip install --quiet --no-deps "tinysoundfont>=0.3.7"
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install musiclime with its dependencies

# Debian packages the tests need besides Python: headless Chromium and its driver for the
# explanation page's browser test (skipped, saying so, where they are missing). Idempotent;
# needs root or sudo only when something is missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo)
system-deps:  ## install chromium + chromedriver (apt) if missing
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then \
		echo "chromium and chromedriver are installed"; \
	else \
		$(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver; \
	fi

demo: setup  ## generate the demo test songs (once) and explain them
	$(PY) -m musiclime_demo.run --cores $(CORES)

test: setup  ## lint, then the whole test suite (slow end-to-end tests included)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q --durations=15

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

lint: setup
	$(VENV)/bin/ruff check .

bench: setup  ## benchmarks (peak memory vs num_samples, ...)
	$(PY) bench/run.py

clean-results:
	rm -rf results
