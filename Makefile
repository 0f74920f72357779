# The two commands: `make run` and `make test`. Everything they need is installed from here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
export PORT

.PHONY: run test test-fast lint browser postfix dovecot clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(VENV)/.installed $@

# Migrates the embedded SQLite database under var/, then runs the web server and a worker.
# MM_DEBUG defaults to true here (a local evaluation); production sets MM_SECRET_KEY instead.
run: $(VENV)/.installed
	MM_DEBUG=$${MM_DEBUG:-true} $(BIN)/mailmarketer run

# Lint and the layering contract (an upward import fails here, before the suite), then the
# whole suite on SQLite and on PostgreSQL (see tools/test.sh).
test: $(VENV)/.dev-installed browser postfix dovecot
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	tools/test.sh

# The inner loop: SQLite only, no browser and no real-process tests (markers browser, slow).
# Extra pytest arguments: make test-fast ARGS="mailmarketer/audience -x".
test-fast: $(VENV)/.dev-installed
	env -u MM_TEST_DATABASE_URL $(BIN)/python -m pytest -q -m "not browser and not slow" $(ARGS)

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

# Browser tests drive Debian's Chromium through Playwright; never a downloaded browser.
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    (apt-get install -y -q chromium >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)) || exit 1; \
	  else \
	    echo "chromium is missing: install Debian's chromium package for the browser tests"; \
	  fi; \
	fi

# The delivery tests run a real Postfix (Debian's package) with their own configuration in a
# temporary directory, never the system's service (mailmarketer/delivery/testing/postfix.py).
postfix:
	@if [ ! -x /usr/sbin/postfix ] || [ ! -x /usr/sbin/smtp-sink ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's postfix for the delivery tests"; \
	    (DEBIAN_FRONTEND=noninteractive apt-get install -y -q postfix >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -q postfix >/dev/null)) || exit 1; \
	  else \
	    echo "postfix is missing: install Debian's postfix package for the delivery tests"; \
	  fi; \
	fi

# The bounce mailbox tests run a real Dovecot IMAP server with their own configuration in a
# temporary directory, never the system's service (mailmarketer/delivery/testing/dovecot.py).
dovecot:
	@if [ ! -x /usr/sbin/dovecot ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's dovecot-imapd for the bounce mailbox tests"; \
	    (DEBIAN_FRONTEND=noninteractive apt-get install -y -q dovecot-imapd >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -q dovecot-imapd >/dev/null)) || exit 1; \
	  else \
	    echo "dovecot is missing: install Debian's dovecot-imapd package for the bounce tests"; \
	  fi; \
	fi

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
