#!/usr/bin/env bash
# Build the hytax container image, hytax:<version>, where <version> is manifest.version in
# nextflow.config (falling back to pyproject.toml). Idempotent and cached: run it again and Docker's
# layer cache makes it fast; a change under src/ rebuilds only the last layers (torch stays).
#
#   .ci/build_image.sh                 # build hytax:<version>
#   HYTAX_IMAGE=hytax:dev .ci/build_image.sh
#
# What it does, each step only when needed:
#   1. installs docker.io and debootstrap (apt, as root) when `dockerd` is missing;
#   2. starts dockerd in the background when `docker info` fails, and waits for it;
#   3. makes debian:bookworm-slim available: pulls it, or when no registry can be reached builds a
#      local stand-in with debootstrap (--variant=minbase, slimmed like the official image);
#   4. builds with BuildKit, passing the TLS CA bundle as a build secret (never stored in the image).
#
# Environment:
#   HYTAX_IMAGE        tag to build (default hytax:<version>)
#   HYTAX_CA_BUNDLE    CA bundle for pip/apt inside the build, mounted as BuildKit secret `ca`
#                      (default: $SSL_CERT_FILE, else /etc/ssl/certs/ca-certificates.crt, when
#                      present; set to '' for none)
#   HYTAX_NICE         niceness of the build (default 10)
#   HYTAX_BUILD_ARGS   extra arguments for `docker build` (e.g. "--build-arg TORCH_VERSION=2.15.0")
#   HYTAX_DEBIAN_MIRROR  mirror for the debootstrap stand-in (default http://deb.debian.org/debian)
#   HYTAX_DOCKERD_LOG  where a dockerd started here logs (default /tmp/hytax-dockerd.log)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
base_image=debian:bookworm-slim
nice_level=${HYTAX_NICE:-10}
dockerd_log=${HYTAX_DOCKERD_LOG:-/tmp/hytax-dockerd.log}
mirror=${HYTAX_DEBIAN_MIRROR:-http://deb.debian.org/debian}

t_start=$(date +%s)
t_last=$t_start
die() { echo "build_image.sh: error: $*" >&2; exit 1; }
step() { echo "==> $*"; }
timing() {  # timing LABEL: seconds since the previous timing line
    local now; now=$(date +%s)
    printf '    [time] %-28s %4ds (total %ds)\n' "$1" "$((now - t_last))" "$((now - t_start))"
    t_last=$now
}

# --- version -------------------------------------------------------------------------------------
manifest_version() {  # prints manifest.version from nextflow.config, nothing when absent
    local cfg=$root/nextflow.config
    [ -f "$cfg" ] || return 0
    # the first `version = '...'` inside a `manifest {` block
    awk '
        /^[[:space:]]*manifest[[:space:]]*\{/ { inside = 1; next }
        inside && /^[[:space:]]*\}/            { inside = 0 }
        inside && match($0, /^[[:space:]]*version[[:space:]]*=[[:space:]]*["\x27][^"\x27]+["\x27]/) {
            v = substr($0, RSTART, RLENGTH); sub(/^[^"\x27]*["\x27]/, "", v); sub(/["\x27]$/, "", v)
            print v; exit
        }' "$cfg"
}
pyproject_version() {
    sed -n 's/^version[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$root/pyproject.toml" | head -n1
}
version=$(manifest_version)
py_version=$(pyproject_version)
if [ -z "$version" ]; then
    version=${py_version:-0.1.0}
    echo "note: no manifest.version in nextflow.config; using $version" >&2
elif [ -n "$py_version" ] && [ "$py_version" != "$version" ]; then
    echo "warning: nextflow.config manifest.version $version != pyproject.toml version $py_version" >&2
fi
image=${HYTAX_IMAGE:-hytax:$version}

# --- docker engine -------------------------------------------------------------------------------
if ! command -v dockerd >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
    step "installing docker.io and debootstrap"
    [ "$(id -u)" = 0 ] || die "docker.io/debootstrap missing and not root: install them first"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq docker.io debootstrap >/dev/null || die "apt-get install docker.io debootstrap failed"
    timing "apt install"
fi

if ! docker info >/dev/null 2>&1; then
    step "starting dockerd (log: $dockerd_log)"
    [ "$(id -u)" = 0 ] || die "docker engine not reachable and not root: start dockerd first"
    command -v dockerd >/dev/null || die "dockerd not found"
    # its own session, so that it outlives this script (and a CI step's process group)
    setsid nohup dockerd >"$dockerd_log" 2>&1 < /dev/null &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || { tail -n 20 "$dockerd_log" >&2; die "dockerd did not come up in 60 s"; }
    timing "dockerd start"
fi

# A client that can drive BuildKit: the buildx plugin, or a pre-23 client whose BuildKit is
# built in (Debian bookworm's docker.io 20.10 at /usr/bin/docker). Docker >= 23 without buildx
# refuses DOCKER_BUILDKIT=1 and its legacy builder cannot read RUN --mount.
docker_cli=""
for c in docker /usr/bin/docker; do
    command -v "$c" >/dev/null 2>&1 || continue
    if "$c" buildx version >/dev/null 2>&1; then docker_cli=$c; break; fi
    major=$("$c" version --format '{{.Client.Version}}' 2>/dev/null | cut -d. -f1 || true)
    if [[ "$major" =~ ^[0-9]+$ ]] && [ "$major" -lt 23 ]; then docker_cli=$c; break; fi
done
[ -n "$docker_cli" ] || die "no docker client with BuildKit: install the buildx plugin (docker-buildx) or use docker.io 20.10"

# --- base image ----------------------------------------------------------------------------------
make_standin() {
    local dir
    dir=$(mktemp -d /tmp/hytax-bookworm.XXXXXX)
    nice -n "$nice_level" debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$dir.log" 2>&1 \
        || { tail -n 20 "$dir.log" >&2; die "debootstrap failed (log $dir.log)"; }
    rm -f "$dir.log"
    # make it look like the official slim image: deb822 sources with updates and security,
    # no docs/man/locales for packages installed later, apt lists and caches cleaned
    rm -f "$dir/etc/apt/sources.list"
    cat >"$dir/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    cat >"$dir/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
# as in the official "slim" Debian images
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
EOF
    cat >"$dir/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    printf 'Acquire::Languages "none";\n' >"$dir/etc/apt/apt.conf.d/docker-no-languages"
    printf 'Apt::AutoRemove::SuggestsImportant "false";\n' >"$dir/etc/apt/apt.conf.d/docker-autoremove-suggests"
    find "$dir/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
    rm -rf "$dir"/usr/share/{man,info,groff,linda,locale}/* "$dir"/var/lib/apt/lists/* \
           "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb "$dir"/var/log/*.log
    tar --numeric-owner -C "$dir" -c . \
        | docker import --change 'CMD ["bash"]' \
            --message "local stand-in for $base_image (debootstrap minbase)" - "$base_image" >/dev/null \
        || { rm -rf "$dir"; die "docker import of the stand-in failed"; }
    rm -rf "$dir"
}

if ! docker image inspect "$base_image" >/dev/null 2>&1; then
    step "base image $base_image missing: trying docker pull"
    if timeout 120 docker pull "$base_image" >/dev/null 2>&1; then
        timing "base pull"
    else
        step "no registry reachable: building a local stand-in with debootstrap"
        command -v debootstrap >/dev/null || die "debootstrap not installed"
        make_standin
        timing "base stand-in (debootstrap)"
    fi
fi

# --- build ---------------------------------------------------------------------------------------
if [ -n "${HYTAX_CA_BUNDLE+set}" ]; then
    ca=$HYTAX_CA_BUNDLE  # explicit: must exist ('' = none)
    [ -z "$ca" ] || [ -s "$ca" ] || die "HYTAX_CA_BUNDLE=$ca not found (set HYTAX_CA_BUNDLE='' for none)"
else
    ca=""
    for f in "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
        if [ -n "$f" ] && [ -s "$f" ]; then ca=$f; break; fi
    done
fi
secret_args=()
[ -z "$ca" ] || secret_args=(--secret "id=ca,src=$ca")
revision=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)

step "building $image with $docker_cli (BuildKit${ca:+, CA secret from $ca})"
# shellcheck disable=SC2086
DOCKER_BUILDKIT=1 nice -n "$nice_level" "$docker_cli" build \
    --progress=plain \
    "${secret_args[@]}" \
    --build-arg "VERSION=$version" \
    --build-arg "REVISION=$revision" \
    ${HYTAX_BUILD_ARGS:-} \
    -t "$image" -f "$root/Dockerfile" "$root" \
    || die "docker build of $image failed"
timing "docker build"

size=$(docker image inspect -f '{{.Size}}' "$image")
echo "built $image ($(( size / 1000000 )) MB); total $(( $(date +%s) - t_start ))s"
