# Two commands that work on a fresh machine:
#   make run   - set everything up and run the main job (the Happy-House demo for now)
#   make test  - set everything up and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DATA   ?= $(or $(FACEPRINT_DATA),../shared/data)
STAMP  := $(VENV)/.installed

.PHONY: setup run test bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU build of torch first: any other torch spec may pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/faceprint demo happy-house --data $(DATA)

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build dist src/*.egg-info
