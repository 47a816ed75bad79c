# `make demo`: set everything up, then quantize the embedded Fashion-MNIST model and print a table.
# `make test`: set everything up, then lint and run the test suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.edgeq-installed

.PHONY: setup demo test lint clean

setup: $(STAMP) /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-build-isolation --no-deps -e .
	touch $(STAMP)

/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz:
	if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; fi

demo: setup
	$(PY) -m edgeq.demo

lint: setup
	$(PY) -m ruff check edgeq tests bench examples

test: lint
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .cache demo_out dist build *.egg-info
