# hearthgate — `make demo` shows it working, `make test` proves it.
# Both bootstrap what they need on a fresh Debian / Raspberry Pi OS machine:
# python3-venv and mosquitto from apt when missing, then a virtualenv in .venv.

VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT     := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get
export PIP_DISABLE_PIP_VERSION_CHECK=1

.PHONY: demo test bench routine-suite faults lint install uninstall bundle system-deps test-deps clean

system-deps:
	@python3 -c 'import ensurepip, venv' 2>/dev/null || { $(APT) update -qq && $(APT) install -y -qq python3-venv python3-pip; }
	@command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || { $(APT) update -qq && $(APT) install -y -qq mosquitto; }

# The tests' other broker (tests/brokers): Debian's RabbitMQ with rabbitmq_mqtt. The tests start
# their own node in a temporary directory; the system service the package starts (where systemd
# runs) is not needed, so it is stopped and disabled again right after the install. The status
# page's browser test (tests/web/test_browser.py) drives Debian's headless Chromium.
test-deps: system-deps
	@ls /usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin/rabbitmq-server >/dev/null 2>&1 || { \
	  $(APT) update -qq && $(APT) install -y -qq rabbitmq-server && \
	  { [ -d /run/systemd/system ] && $(SUDO) systemctl disable --now rabbitmq-server || true; }; }
	@# The power-cut filesystem (tests/faults/powerfs.py): libfuse 3 and fusermount3.
	@command -v fusermount3 >/dev/null 2>&1 || { $(APT) update -qq && $(APT) install -y -qq fuse3; }
	@# The browser test of the status page (tests/web/test_browser.py): Debian's chromium.
	@command -v chromium >/dev/null 2>&1 || { $(APT) update -qq && $(APT) install -y -qq chromium; }

$(STAMP): pyproject.toml | system-deps
	@[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@rm -f $(VENV)/.installed-* && touch $@

demo: system-deps $(STAMP)
	$(VENV)/bin/hearthgate demo

# One pytest worker per core (`-n auto`), each taking whole test files (`--dist loadfile`:
# a file's fixtures and brokers stay in one worker); WORKERS=0 runs it in one process.
WORKERS ?= auto
test: test-deps $(STAMP)
	$(PY) -m ruff check .
	$(PY) tools/import_contracts.py
	$(PY) -m pytest -q -m "not slow" -n $(WORKERS) --dist loadfile $(PYTEST_ARGS)

bench: system-deps $(STAMP)
	@for b in bench/[!_]*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# Issue 16's scenario suite: simulated residents, three incidents, minutes to the first alert
# and false alarms per resident-month (docs/rules.md, "Measured"); a few minutes.
routine-suite: system-deps $(STAMP)
	$(PY) bench/routine_suite.py $(SUITE_ARGS)

# The fault-injection suite: the CI profile (also part of `make test`) and the long one.
faults: test-deps $(STAMP)
	$(PY) -m pytest -q tests/faults
	$(PY) -m pytest -q -m slow tests/faults

# On the Raspberry Pi: a system user, a venv under /opt, /etc/hearthgate, udev rules and the
# systemd unit (systemd/install.sh; INSTALL_ARGS=--dry-run lists what it would change).
install:
	$(SUDO) ./systemd/install.sh $(INSTALL_ARGS) install

uninstall:
	$(SUDO) ./systemd/install.sh $(INSTALL_ARGS) uninstall

# The offline install bundle for sites without PyPI: dist/hearthgate-<version>-bundle.tar.gz,
# the wheel with its build baked in and every dependency's wheels per architecture
# (tools/make_bundle.py; on the Pi: sudo ./systemd/install.sh --bundle FILE).
ARCHES ?= aarch64 armv7l x86_64
bundle: $(STAMP)
	$(PY) tools/make_bundle.py --arch "$(ARCHES)"

# ruff, and the import contracts of pyproject.toml (a core at the bottom, imports one way).
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) tools/import_contracts.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis build dist *.egg-info
