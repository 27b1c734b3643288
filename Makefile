# make install: .venv with the project and its test, plots and ray extras (versions from constraints.txt)
# make test:    the test suite (installs first if needed); CI runs exactly this through .ci/run
# make demo:    the offline demo (trains on the bundled digits into outputs/demo_lsr_os_tc, replacing an earlier demo)
# make bench:   loss benchmark (forward+backward of every method vs F.cross_entropy)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install test demo bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test,plots,ray]'
	touch $@

test: install
	$(PY) -m pytest -q

# -q: a failed run ends with accelerate's exit status 1 and the project's message, not accelerate's traceback; the
# other flags are the values accelerate would otherwise warn it defaulted. --overwrite: `make demo` again retrains.
demo: install
	$(VENV)/bin/accelerate launch -q --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no \
		scripts/train.py --recipe recipes/demo_lsr_os_tc.yaml --overwrite

bench: install
	$(PY) scripts/bench.py loss

clean:
	rm -rf $(VENV) *.egg-info outputs
