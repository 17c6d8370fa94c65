# musiclime: the two commands a newcomer needs are `make demo` and `make test`.
# Both create .venv/ (if missing) and install everything into it first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.musiclime-installed
CORES  ?= 2
# pytest-xdist workers for `make test`. tests/conftest.py groups the tests: most files go to a
# worker whole (their module fixtures run once), a few long ones test by test, longest first.
TEST_WORKERS ?= 2
# uv installs the lock; it lives in its own small venv so that syncing .venv never removes it.
UVENV  := .tools
UV     := $(UVENV)/bin/uv
# Never let uv fetch a Python: it uses the interpreter named by PYTHON.
export UV_PYTHON_DOWNLOADS := never
EXTRAS := --extra dev --extra demo

.PHONY: setup system-deps demo test test-fast lint lock lock-check upgrade bench clean-results

$(UV): tools/uv-requirements.txt
	test -x $(UVENV)/bin/python || $(PYTHON) -m venv $(UVENV)
	$(UVENV)/bin/python -m pip install --quiet --require-hashes -r tools/uv-requirements.txt
	touch $(UV)

# Installs exactly uv.lock into .venv (--locked: refuse a lock that no longer matches
# pyproject.toml instead of resolving anew; run `make lock` after changing dependencies).
$(STAMP): pyproject.toml uv.lock $(UV)
	$(UV) sync --locked $(EXTRAS) --python $(PYTHON)
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install exactly the lock (uv.lock) into it

lock: $(UV)  ## regenerate uv.lock after a change to pyproject.toml (keeps versions where allowed)
	$(UV) lock
	$(UV) export --frozen --no-hashes --no-emit-project $(EXTRAS) -o requirements.lock.txt --quiet

lock-check: $(UV)  ## fail when uv.lock or requirements.lock.txt is out of date with pyproject.toml
	$(UV) lock --check
	$(UV) export --frozen --no-hashes --no-emit-project $(EXTRAS) --quiet | grep -v '^#' > $(UVENV)/requirements.check
	grep -v '^#' requirements.lock.txt | diff -q $(UVENV)/requirements.check - >/dev/null \
		|| { echo "requirements.lock.txt is out of date with uv.lock: run make lock"; exit 1; }

upgrade: $(UV)  ## move the lock to the newest versions pyproject.toml allows, then run the fast tests
	$(UV) lock --upgrade
	$(UV) export --frozen --no-hashes --no-emit-project $(EXTRAS) -o requirements.lock.txt --quiet
	$(MAKE) test-fast

# Debian packages the tests need besides Python, as FILE:PACKAGE: headless Chromium and its
# driver for the explanation page's browser test, and asc-music (GPL-2+, 10 MB, no
# dependencies) for its real stereo MP3 recording (tests/test_long_songs.py). Tests skip, saying
# so, where they are missing. Idempotent: installs only what is missing, and needs root or sudo
# only then.
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo)
SYSTEM_DEPS := /usr/bin/chromium:chromium /usr/bin/chromedriver:chromium-driver \
	/usr/share/games/asc/music/machine_wars.mp3:asc-music
system-deps:  ## install chromium, chromedriver and asc-music (apt) if missing
	@missing=""; \
	for dep in $(SYSTEM_DEPS); do [ -e "$${dep%%:*}" ] || missing="$$missing $${dep#*:}"; done; \
	if [ -z "$$missing" ]; then \
		echo "system packages are installed: chromium, chromium-driver, asc-music"; \
	else \
		$(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	fi

demo: setup  ## generate the demo test songs (once) and explain them
	$(PY) -m musiclime_demo.run --cores $(CORES)

test: setup lock-check  ## lint and the layer contracts, then the whole test suite (slow end-to-end tests included)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q --durations=25 -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

lint: setup  ## ruff, and the layer contracts in .importlinter (docs/architecture.md)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

bench: setup  ## benchmarks (peak memory vs num_samples, ...)
	$(PY) bench/run.py

clean-results:
	rm -rf results
