"""The container image (Dockerfile, built by .ci/build_image.sh): what it holds, that it runs as
any user id, that no build secret is left in it, and that the pipeline gives the same merged
tables inside it as outside.

Skipped, with the reason, unless `docker info` works and the image hytax:<manifest.version>
exists (override with HYTAX_IMAGE). Deselect with `-m "not docker"`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[1]
NEXTFLOW = REPO / "nextflow"
TEST_CONFIG = REPO / "conf" / "test.config"
ANY_UID = "12345:12345"
NXF_TIMEOUT_S = int(os.environ.get("HYTAX_NXF_TIMEOUT", "3600"))
CERT_ENV = (
    "PIP_CERT",
    "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
)
PEM_RE = re.compile(r"-----BEGIN CERTIFICATE-----\n(.*?)-----END CERTIFICATE-----", re.S)


def manifest_version() -> str:
    """manifest.version from nextflow.config (as .ci/build_image.sh reads it), else pyproject's."""
    cfg = REPO / "nextflow.config"
    if cfg.is_file():
        block = re.search(r"^\s*manifest\s*\{(.*?)^\s*\}", cfg.read_text(), re.S | re.M)
        if block:
            found = re.search(r"^\s*version\s*=\s*['\"]([^'\"]+)['\"]", block.group(1), re.M)
            if found:
                return found.group(1)
    found = re.search(r'^version\s*=\s*"([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)
    return found.group(1) if found else "0.1.0"


VERSION = manifest_version()
IMAGE = os.environ.get("HYTAX_IMAGE", f"hytax:{VERSION}")


def _sh(*cmd: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, **kw)


def drun(
    *cmd: str,
    user: str | None = ANY_UID,
    opts: tuple[str, ...] = (),
    stdin: str | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess:
    """`docker run --rm` in the image, as an arbitrary uid unless told otherwise."""
    args = ["docker", "run", "--rm", "--network", "none"]
    if stdin is not None:
        args.append("-i")
    if user:
        args += ["-u", user]
    return _sh(*args, *opts, IMAGE, *cmd, input=stdin, timeout=timeout)


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    return proc.stdout + proc.stderr


def _unavailable(reason: str) -> None:
    """Skip where Docker is optional; fail where CI built the image (HYTAX_REQUIRE_DOCKER=1)."""
    if os.environ.get("HYTAX_REQUIRE_DOCKER") == "1":
        pytest.fail(f"HYTAX_REQUIRE_DOCKER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module", autouse=True)
def image() -> str:
    if shutil.which("docker") is None:
        _unavailable("docker client not installed (see docs/container.md)")
    try:
        info = _sh("docker", "info", timeout=30)
    except subprocess.TimeoutExpired:
        _unavailable("`docker info` timed out: is dockerd running?")
    if info.returncode != 0:
        _unavailable(
            "`docker info` failed: no Docker engine (start dockerd, or run .ci/build_image.sh)"
        )
    if _sh("docker", "image", "inspect", IMAGE, timeout=30).returncode != 0:
        _unavailable(f"image {IMAGE} not built: run .ci/build_image.sh")
    return IMAGE


# --- contents, as any user --------------------------------------------------------------------


def test_hytax_version_matches_manifest():
    out = ok(drun("hytax", "--version"))
    assert out.strip() == f"hytax {VERSION}"


@pytest.mark.parametrize(
    ("cmd", "expect"),
    [
        (("mmseqs", "version"), r"^\S+"),
        (("multiqc", "--version"), r"multiqc, version \d"),
        (
            (
                "python",
                "-c",
                "import torch, dnaio, numpy, safetensors, matplotlib; print(torch.__version__)",
            ),
            r"^\d+\.\d+",
        ),
        (("ps", "-o", "pid,comm"), r"PID"),
        (
            ("sh", "-c", "for t in bash awk sed grep date; do command -v $t || exit 1; done"),
            r"/date$",
        ),
    ],
    ids=["mmseqs", "multiqc", "python-imports", "ps", "nextflow-wrapper-tools"],
)
def test_tool_runs_as_any_uid(cmd, expect):
    out = ok(drun(*cmd))
    assert re.search(expect, out, re.M), out


def test_venv_first_on_path_and_home_writable():
    out = ok(
        drun(
            "sh",
            "-c",
            'for t in python hytax multiqc; do command -v $t; done; id -u; touch "$HOME/x"',
        )
    )
    lines = out.split()
    assert lines[:3] == ["/opt/hytax/bin/python", "/opt/hytax/bin/hytax", "/opt/hytax/bin/multiqc"]
    assert "12345" in lines


def test_runs_on_read_only_root_as_any_uid():
    """As Singularity/Apptainer run it: root file system read-only, only /tmp writable."""
    script = (
        "import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt; import torch\n"
        "y = torch.nn.Linear(4, 2)(torch.ones(1, 4)); assert y.shape == (1, 2)\n"
        "plt.plot([0, 1], [0, 1]); plt.savefig('/tmp/plot.png')\n"
        "print('cuda', torch.cuda.is_available())\n"
    )
    out = ok(drun("python", "-c", script, opts=("--read-only", "--tmpfs", "/tmp")))
    assert "cuda False" in out
    out = ok(
        drun(
            "sh",
            "-c",
            "mkdir /tmp/mq && cd /tmp/mq && multiqc --no-ansi . ; echo rc=$?",
            opts=("--read-only", "--tmpfs", "/tmp"),
        )
    )
    assert "rc=0" in out or "rc=1" in out, out  # 1: no results found (empty folder), not a crash
    assert "Traceback" not in out, out


def test_image_matches_source():
    """The image's hytax is this checkout's src/hytax: otherwise rebuild (the end-to-end test
    would compare old code with new)."""

    def digest(files: dict[str, bytes]) -> str:
        h = hashlib.sha256()
        for name in sorted(files):
            h.update(name.encode() + b"\0" + files[name] + b"\0")
        return h.hexdigest()

    local = {
        p.relative_to(REPO / "src" / "hytax").as_posix(): p.read_bytes()
        for p in (REPO / "src" / "hytax").rglob("*.py")
    }
    script = (
        "import hashlib, pathlib, hytax, json\n"
        "root = pathlib.Path(hytax.__file__).parent\n"
        "print(json.dumps({p.relative_to(root).as_posix(): p.read_bytes().decode('latin-1')"
        " for p in root.rglob('*.py')}))\n"
    )
    inside = {
        k: v.encode("latin-1")
        for k, v in json.loads(ok(drun("python", "-c", script)).strip()).items()
    }
    stale = sorted(
        set(local) ^ set(inside) | {k for k in set(local) & set(inside) if local[k] != inside[k]}
    )
    assert digest(local) == digest(inside), (
        f"{IMAGE} is stale ({stale[:10]}): run .ci/build_image.sh"
    )


# --- no build secret left ---------------------------------------------------------------------


def test_no_ca_or_secret_in_environment_or_history():
    cfg = json.loads(ok(_sh("docker", "image", "inspect", IMAGE)))[0]["Config"]
    env = dict(e.split("=", 1) for e in cfg.get("Env") or [])
    assert not set(env) & set(CERT_ENV), env
    history = ok(_sh("docker", "history", "--no-trunc", "--format", "{{.CreatedBy}}", IMAGE))
    assert "BEGIN CERTIFICATE" not in history
    out = ok(
        drun(
            "sh",
            "-c",
            "env; echo ---; find /run/secrets -mindepth 1 2>/dev/null; "
            "ls /etc/pip.conf /opt/hytax/pip.conf /root/.config/pip 2>/dev/null; true",
        )
    )
    env_text, _, files = out.partition("---")
    assert not [v for v in CERT_ENV if f"\n{v}=" in "\n" + env_text], env_text
    assert files.strip() == "", f"left in the image: {files}"


# Run inside the image: which files hold one of the certificates given on stdin (one base64 line
# of each)? Files that a wheel installed unchanged (sha256 as in its dist-info RECORD, e.g.
# certifi's or botocore's public bundle) do not count: they came from PyPI, not from the build.
_FIND_CA = r"""
import base64, hashlib, os, pathlib, sys, sysconfig
needles = [n.encode() for n in sys.stdin.read().split()]
site = pathlib.Path(sysconfig.get_paths()["purelib"])
recorded = {}
for record in site.glob("*.dist-info/RECORD"):
    for line in record.read_text().splitlines():
        name, _, rest = line.partition(",")
        digest = rest.split(",")[0]
        if digest.startswith("sha256="):
            recorded[str((site / name).resolve())] = digest[7:]
suffixes = {".pem", ".crt", ".cer", ".conf", ".cfg", ".ini", ".toml", ".txt", ".json", ".yaml"}
roots = ["/etc", "/root", "/tmp", "/run", "/usr/local", "/usr/share/ca-certificates", "/opt/hytax"]
for root in roots:
    for folder, _, files in os.walk(root):
        for f in files:
            path = os.path.join(folder, f)
            if root == "/opt/hytax" and os.path.splitext(f)[1] not in suffixes:
                continue
            try:
                if os.path.islink(path) or os.path.getsize(path) > 50_000_000:
                    continue
                data = open(path, "rb").read()
            except OSError:
                continue
            if not any(n in data for n in needles):
                continue
            sha = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            if recorded.get(str(pathlib.Path(path).resolve())) == sha:
                continue
            print(path)
"""


def test_build_ca_not_copied_into_image():
    """The certificates of the build machine's bundle that the image's Debian bundle lacks (such
    as a TLS proxy's CA, passed to the build as a secret) appear in no file of the image."""
    host_bundle = Path(
        os.environ.get("HYTAX_CA_BUNDLE")
        or os.environ.get("SSL_CERT_FILE")
        or "/etc/ssl/certs/ca-certificates.crt"
    )
    if not host_bundle.is_file():
        pytest.skip(f"no CA bundle at {host_bundle} to compare with")
    host = set(PEM_RE.findall(host_bundle.read_text(errors="replace")))
    image_bundle = ok(drun("cat", "/etc/ssl/certs/ca-certificates.crt"))
    extra = host - set(PEM_RE.findall(image_bundle))
    if not extra:
        pytest.skip("the build machine's CA bundle adds nothing to Debian's: nothing to look for")
    # one full base64 line from the middle of each extra certificate
    needles = sorted({body.splitlines()[len(body.splitlines()) // 2] for body in extra})
    proc = drun("python", "-c", _FIND_CA, user=None, stdin="\n".join(needles) + "\n", timeout=600)
    assert ok(proc).strip() == "", f"build machine's CA found in: {proc.stdout}"


# --- the pipeline, in the image and outside ---------------------------------------------------


def _nextflow(outdir: Path, workdir: Path, profile: str, extra: list[str]) -> Path:
    log = workdir / "nextflow.out"
    cmd = [
        str(NEXTFLOW),
        "run",
        str(REPO),
        "-profile",
        profile,
        "--outdir",
        str(outdir),
        "-work-dir",
        str(workdir / "work"),
        *extra,
    ]
    env = dict(os.environ)
    # the local run finds this interpreter's hytax (the repository's venv) and the system mmseqs
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    with log.open("w") as fh:
        fh.write(" ".join(cmd) + "\n")
        fh.flush()
        proc = subprocess.run(
            cmd, cwd=workdir, env=env, stdout=fh, stderr=subprocess.STDOUT, timeout=NXF_TIMEOUT_S
        )
    if proc.returncode != 0:
        tail = log.read_text()[-6000:]
        pytest.fail(
            f"nextflow -profile {profile} failed (exit {proc.returncode}); log {log}:\n{tail}"
        )
    return outdir


def _tables(outdir: Path) -> dict[str, str]:
    return {
        p.relative_to(outdir).as_posix(): p.read_text() for p in sorted(outdir.rglob("*.hytax.tsv"))
    }


@pytest.fixture(scope="module")
def pipeline_args(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> list[str]:
    if not TEST_CONFIG.is_file():
        pytest.skip("the pipeline's test profile (conf/test.config) is not there yet")
    if not os.access(NEXTFLOW, os.X_OK):
        pytest.skip(f"{NEXTFLOW} missing: run tools/nextflow/install.sh (or `make nextflow`)")
    if shutil.which("java") is None:
        pytest.skip("java not installed (Nextflow needs it)")
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    for tool in ("mmseqs", "hytax"):
        if shutil.which(tool, path=path) is None:
            pytest.skip(f"`{tool}` not on PATH: the local run (outside the image) needs it")
    # every module names its image (hytax:<version>); a withName selector overrides them all
    image_config = tmp_path_factory.mktemp("config") / "image.config"
    image_config.write_text(f"process {{ withName: '.*' {{ container = '{IMAGE}' }} }}\n")
    args = ["-c", str(image_config)]
    default_model = REPO / "assets" / "models" / "hytax-mini"
    if default_model.is_dir() and any(default_model.iterdir()):
        # a snapshot, so that both runs see the same weights even if the bundled model is
        # regenerated while they run
        model = tmp_path_factory.mktemp("model") / default_model.name
        shutil.copytree(default_model, model)
    else:
        # no bundled model (yet): both runs use one small random model
        model = request.getfixturevalue("tiny_model_dir")
    return [*args, "--model", str(model)]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory, pipeline_args: list[str]) -> Path:
    work = tmp_path_factory.mktemp("nxf_local")
    return _nextflow(work / "results", work, "test", pipeline_args)


@pytest.fixture(scope="module")
def docker_run(tmp_path_factory: pytest.TempPathFactory, pipeline_args: list[str]) -> Path:
    work = tmp_path_factory.mktemp("nxf_docker")
    return _nextflow(work / "results", work, "test,docker", pipeline_args)


def test_pipeline_in_docker_matches_local_run(local_run: Path, docker_run: Path):
    local, docker = _tables(local_run), _tables(docker_run)
    assert local, f"no *.hytax.tsv under {local_run}"
    assert sorted(docker) == sorted(local), (
        f"tables differ: docker {sorted(docker)} vs local {sorted(local)}"
    )
    for name in local:
        if docker[name] != local[name]:
            diff = "".join(
                list(
                    difflib.unified_diff(
                        local[name].splitlines(True),
                        docker[name].splitlines(True),
                        fromfile=f"local/{name}",
                        tofile=f"docker/{name}",
                    )
                )[:60]
            )
            pytest.fail(f"{name} differs between the local and the docker run:\n{diff}")


def test_pipeline_in_docker_ran_in_the_image(docker_run: Path):
    """The docker run's tasks really ran in the image (Nextflow's trace has no container column by
    default, so read the task wrappers)."""
    runs = list((docker_run.parent / "work").rglob(".command.run"))
    assert runs, "no task wrappers in the docker run's work dir"
    assert all(IMAGE in r.read_text() for r in runs), "a task ran without the image"
