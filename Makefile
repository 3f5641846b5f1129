# hytax: set-up, tests and benchmarks. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# nf-core/tools in a venv of its own (its pins clash with the project's dev tools)
VENV_NFCORE ?= .venv-nfcore
NFCORE_VERSION ?= 4.2.1
NXF_VER ?= 24.10.0
DATA ?= ../shared/data
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup python tools nextflow test test-unit test-pipeline lint lint-nfcore nfcore-tools test-full-data run-test image benchmark clean

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

# Slurm (Debian slurm-wlm 22.05; munge comes with it, though tools/slurm/cluster.py's test cluster
# uses auth/none) for tests/test_slurm.py; run as root or with sudo.
.PHONY: slurm
slurm:
	@{ command -v slurmctld || test -x /usr/sbin/slurmctld; } >/dev/null && command -v sbatch >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge; }

# A pinned Nextflow from Maven Central (no plugins, offline). With internet access users
# normally install it with: curl -s https://get.nextflow.io | bash
nextflow:
	NXF_VER=$(NXF_VER) bash tools/nextflow/install.sh

# What tests check our report files with, apart from our own deps: taxpasta (its own venv:
# it needs numpy<2 and pandas<2; pandera>=0.21 breaks taxpasta 0.7.0 on pandas 1.x) and Krona's
# ktImportText (Debian `radiant`).
TAXPASTA_VENV ?= .venv-taxpasta
.PHONY: report-tools taxpasta krona
report-tools: taxpasta krona
taxpasta: $(TAXPASTA_VENV)/.installed
$(TAXPASTA_VENV)/.installed:
	python3 -m venv $(TAXPASTA_VENV)
	$(TAXPASTA_VENV)/bin/python -m pip install -q 'taxpasta==0.7.0' 'pandera<0.21'
	touch $@
krona:
	@command -v ktImportText >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq radiant; }

lint: python
	$(VENV)/bin/ruff check src tests benchmarks tools

nfcore-tools: $(VENV_NFCORE)/.installed
$(VENV_NFCORE)/.installed:
	python3 -m venv $(VENV_NFCORE)
	$(VENV_NFCORE)/bin/python -m pip install -q 'nf-core==$(NFCORE_VERSION)'
	touch $@

# nf-core's pipeline lint, offline (.nf-core.yml says which checks are off and why); it runs
# `nextflow config`, so ./nextflow goes first on PATH
lint-nfcore: nfcore-tools nextflow
	PATH=$(CURDIR):$$PATH NXF_OFFLINE=true NFCORE_NO_VERSION_CHECK=1 \
	    $(VENV_NFCORE)/bin/nf-core pipelines lint --dir . --plain-text

test: setup slurm lint lint-nfcore report-tools
	$(VENV)/bin/pytest -ra

test-unit: python
	$(VENV)/bin/pytest -ra -m "not pipeline and not docker"

run-test: setup
	./nextflow run . -profile test --outdir results

image:
	bash .ci/build_image.sh

# the reference of -profile test_full: every genome of $(DATA) in one FASTA (gz), the taxdump
# uncompressed (MMseqs2 reads neither a folder of genomes nor .dmp.gz)
test-full-data: build/test_full/.done
build/test_full/.done:
	mkdir -p build/test_full/taxdump
	cat $(DATA)/genomes/*.fa.gz > build/test_full/genomes.fa.gz
	for name in nodes names merged; do gzip -cd $(DATA)/taxdump/$$name.dmp.gz > build/test_full/taxdump/$$name.dmp; done
	cat $(DATA)/seq2taxid.tsv > build/test_full/seq2taxid.tsv
	touch $@

benchmark: python
	$(PY) benchmarks/predict_throughput.py --data $(DATA)

clean:
	rm -rf work results .nextflow .nextflow.log* .pytest_cache
