"""`-profile slurm` through a real Slurm cluster: slurmctld and slurmd started on this machine
by tools/slurm/cluster.py (auth/none, so no munged), two partitions on the one node.

The test profile runs once with the local executor and once through Slurm; the merged tables and
reports must be identical. A stub run with --use_gpu checks that only BERTax jobs get the GPU
partition and options. The daemons are stopped by their recorded PIDs when the module ends.
Skipped when Slurm is not installed, unless HYTAX_REQUIRE_SLURM is set (CI sets it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from conftest import load_script
from test_pipeline import REPO, Run, _skip_without_tools, latest_trace, nextflow, ok

pytestmark = pytest.mark.pipeline

CLUSTER_SCRIPT = REPO / "tools" / "slurm" / "cluster.py"
CPU, GPU = "cpu", "gpu"  # partitions, both on this machine's node
SAMPLES = ("sample1", "sample2")


def _load_cluster() -> ModuleType:
    return load_script(CLUSTER_SCRIPT, "slurm_cluster")


def _unavailable() -> str | None:
    """Why this machine cannot run the cluster, or None."""
    missing = [n for n in ("slurmctld", "slurmd", "sbatch", "squeue")
               if shutil.which(n) is None and shutil.which(n, path="/usr/sbin:/usr/bin") is None]
    if missing:
        return f"Slurm is not installed ({', '.join(missing)} missing; `make slurm` installs it)"
    if os.geteuid() != 0:
        return "slurmd must run as root to start jobs"
    return None


@pytest.fixture(scope="module")
def slurm_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A running single-node cluster (its state folder); SLURM_CONF points at it meanwhile."""
    reason = _unavailable()
    if reason:
        if os.environ.get("HYTAX_REQUIRE_SLURM"):
            pytest.fail(f"HYTAX_REQUIRE_SLURM is set but {reason}")
        pytest.skip(reason)
    _skip_without_tools()
    cluster = _load_cluster()
    state = tmp_path_factory.mktemp("slurm")
    cluster.start(state, [CPU, GPU])
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("SLURM_CONF", str(state / "slurm.conf"))
            yield state
    finally:
        cluster.stop(state)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    _skip_without_tools()
    return ok(nextflow(tmp_path_factory.mktemp("local"), "-profile", "test"))


@pytest.fixture(scope="module")
def slurm_run(slurm_state: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    return ok(nextflow(tmp_path_factory.mktemp("on_slurm"), "-profile", "test,slurm",
                       "--slurm_queue", CPU))


def _job(job_id: str) -> dict[str, str]:
    """What slurmctld knows of a job (kept for MinJobAge, 300 s, after it ends)."""
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True,
                         text=True, check=True).stdout
    return dict(re.findall(r"(\w+)=(\S*)", out))


def _sbatch_header(task_dir: Path) -> list[str]:
    return [line for line in (task_dir / ".command.run").read_text().splitlines()
            if line.startswith("#SBATCH")]


def test_every_task_ran_as_a_slurm_job(slurm_run: Run, local_run: Run, slurm_state: Path) -> None:
    tasks = latest_trace(slurm_run.outdir)
    assert sorted(t["process"] for t in tasks) == sorted(
        t["process"] for t in latest_trace(local_run.outdir))
    job_ids = [t["native_id"] for t in tasks]
    assert all(j.isdigit() for j in job_ids) and len(set(job_ids)) == len(tasks), job_ids
    controller_log = (slurm_state / "slurmctld.log").read_text()
    for task in tasks:
        assert task["status"] == "COMPLETED" and task["exit"] == "0", task
        assert f"JobId={task['native_id']} " in controller_log, task["name"]
        (task_dir,) = (slurm_run.launch / "work").glob(f"{task['hash']}*")
        assert f"#SBATCH -p {CPU}" in _sbatch_header(task_dir), task["name"]


def test_slurm_run_equals_local_run(slurm_run: Run, local_run: Run) -> None:
    for sample in SAMPLES:
        for table in (f"hytax/{sample}.hytax.tsv", f"reports/{sample}.kraken2.report.txt"):
            on_slurm = (slurm_run.outdir / table).read_text()
            assert on_slurm and on_slurm == (local_run.outdir / table).read_text(), table


def test_gpu_jobs_get_the_gpu_partition_and_options(slurm_state: Path, tmp_path: Path) -> None:
    """-stub with --use_gpu: BERTax jobs go to the GPU partition with the GPU options (here a
    job comment, as this node has no GPU to request), every job with the common options."""
    run = ok(nextflow(tmp_path, "-profile", "test,slurm", "-stub", "--use_gpu",
                      "--slurm_queue", CPU, "--slurm_gpu_queue", GPU,
                      "--slurm_gpu_options=--comment=hytax-gpu", "--slurm_options=--nice=1"))
    tasks = latest_trace(run.outdir)
    gpu_tasks = [t for t in tasks if "HYTAX_PREDICT" in t["process"]]
    assert gpu_tasks and len(gpu_tasks) < len(tasks)
    for task in tasks:
        job = _job(task["native_id"])
        on_gpu = task in gpu_tasks
        assert job["Partition"] == (GPU if on_gpu else CPU), task["name"]
        assert job["Nice"] == "1", task["name"]
        assert (job.get("Comment") == "hytax-gpu") == on_gpu, task["name"]
