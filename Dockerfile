# hytax: MMseqs2 + PyTorch BERTax + MultiQC, for the Nextflow pipeline's docker/singularity profiles.
#
# Build (BuildKit is required for the CA secret mount; see docs/container.md):
#   .ci/build_image.sh
# or by hand, behind a TLS-intercepting proxy:
#   DOCKER_BUILDKIT=1 docker build --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt \
#       --build-arg VERSION=0.1.0 -t hytax:0.1.0 .
# The CA bundle is mounted only while pip/apt run (/run/secrets/ca); it is not in any layer.
#
# Layers go from least to most often changed: a change under src/ reinstalls only hytax itself,
# a change to pyproject.toml only the small dependencies, never torch (pinned by TORCH_VERSION).

FROM debian:bookworm-slim

# build-time only (an ENV would stay in the image)
ARG DEBIAN_FRONTEND=noninteractive
ENV LANG=C.UTF-8

# procps: Nextflow's task wrapper needs `ps`. wget: `mmseqs createtaxdb` refuses to start without
# a download tool (aria2c, curl or wget) even when given --ncbi-tax-dump. No compilers: everything
# below comes as wheels.
RUN --mount=type=secret,id=ca \
    set -eux; \
    apt_ca=""; if [ -s /run/secrets/ca ]; then apt_ca="-o Acquire::https::CAInfo=/run/secrets/ca"; fi; \
    apt-get $apt_ca update; \
    apt-get $apt_ca install -y --no-install-recommends \
        mmseqs2 python3 python3-venv procps wget ca-certificates; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log

ENV VIRTUAL_ENV=/opt/hytax \
    PATH=/opt/hytax/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN --mount=type=secret,id=ca \
    set -eu; \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; \
    python3 -m venv /opt/hytax; \
    pip install --no-cache-dir --upgrade pip "setuptools>=68" wheel

# torch from PyPI: the Linux x86_64 wheel carries CUDA (nvidia-* wheels) and also runs on CPU.
ARG TORCH_VERSION=2.15.0
RUN --mount=type=secret,id=ca \
    set -eu; \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; \
    pip install --no-cache-dir "torch==${TORCH_VERSION}"

# The other runtime dependencies, read from pyproject.toml, and MultiQC.
ARG MULTIQC_VERSION=1.35
COPY pyproject.toml /tmp/hytax-build/pyproject.toml
RUN --mount=type=secret,id=ca \
    set -eu; \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; \
    python3 -c 'import sys, tomllib; print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]))' \
        /tmp/hytax-build/pyproject.toml > /tmp/hytax-build/requirements.txt; \
    cat /tmp/hytax-build/requirements.txt; \
    pip install --no-cache-dir -r /tmp/hytax-build/requirements.txt \
        "torch==${TORCH_VERSION}" "multiqc==${MULTIQC_VERSION}" "setuptools>=77"; \
    rm -rf /tmp/hytax-build

# hytax itself: no network needed (no deps, setuptools already in the venv).
COPY pyproject.toml README.m[d] /tmp/hytax-build/
COPY src /tmp/hytax-build/src
RUN set -eu; \
    pip install --no-cache-dir --no-deps --no-build-isolation /tmp/hytax-build; \
    rm -rf /tmp/hytax-build; \
    hytax --version

# Runs as any uid (docker run -u, Nextflow's docker.runOptions, Singularity): nothing needs a
# writable $HOME; matplotlib/MultiQC/torch caches go to /tmp.
ENV HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    XDG_CACHE_HOME=/tmp/.cache \
    PYTHONNOUSERSITE=1 \
    PYTHONUNBUFFERED=1 \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="hytax" \
      org.opencontainers.image.description="Hybrid taxonomic classification of metagenomic reads: MMseqs2 taxonomy plus a PyTorch BERTax; with MultiQC" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"

CMD ["hytax", "--help"]
