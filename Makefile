# hytax: set-up, tests and benchmarks. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
NXF_VER ?= 24.10.0
DATA ?= ../shared/data
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup python tools nextflow test test-unit test-pipeline lint run-test image benchmark clean

setup: python tools nextflow

python: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# MMseqs2 (release 14) and Java come from Debian; run as root or with sudo.
tools:
	@command -v mmseqs >/dev/null && command -v java >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmseqs2 default-jre-headless maven; }

# A pinned Nextflow from Maven Central (no plugins, offline). With internet access users
# normally install it with: curl -s https://get.nextflow.io | bash
nextflow:
	NXF_VER=$(NXF_VER) bash tools/nextflow/install.sh

lint: python
	$(VENV)/bin/ruff check src tests benchmarks tools

test: setup lint
	$(VENV)/bin/pytest -ra

test-unit: python
	$(VENV)/bin/pytest -ra -m "not pipeline and not docker"

run-test: setup
	./nextflow run . -profile test --outdir results

image:
	bash .ci/build_image.sh

benchmark: python
	$(PY) benchmarks/predict_throughput.py --data $(DATA)

clean:
	rm -rf work results .nextflow .nextflow.log* .pytest_cache
