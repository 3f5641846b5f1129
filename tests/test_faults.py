"""Faults a real run meets: Nextflow killed half-way then resumed, a task killed for memory,
a corrupt model folder. Real Nextflow on the bundled test data (`-profile test`), started
and stopped by these tests; Nextflow helpers come from tests/test_pipeline.py.

One clean run gives the tables every resumed run must reproduce byte for byte. The fault
chain is one launch folder: killed (SIGKILL) while MMSEQS_TAXONOMY runs, resumed and stopped
(SIGTERM, as a scheduler or Ctrl-C does) while HYTAX_PREDICT runs, resumed to the end. The
chain reads the same test reads cut into two runs per sample (a taxprofiler-style samplesheet):
runs are prepared one after another, so the tables must still equal the clean run's.
"""

from __future__ import annotations

import gzip
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_pipeline import (
    REPO,
    TEST_DATA,
    Run,
    _skip_without_tools,
    latest_trace,
    nextflow,
    nextflow_command,
    ok,
)

pytestmark = pytest.mark.pipeline

# the tables a user reads; every one must come back identical after a crash and -resume
COMPARED = ("hytax", "reports")
WAIT_S = int(os.environ.get("HYTAX_NXF_TIMEOUT", "1200"))

# the nucleotide tier only: what is tested here is resuming, not the protein tier, which
# would add its gene finding and translated searches to each of the four runs
ONE_TIER = ("--skip_protein_db",)


@dataclass
class Started:
    """A Nextflow run this test started and may stop."""

    proc: subprocess.Popen
    launch: Path
    log: Path


def start(launch: Path, label: str, *args: str) -> Started:
    cmd, env, _ = nextflow_command(launch, *args)
    log = launch / f"nextflow.{label}.out"
    with open(log, "w") as out:
        # its own process group: the tasks it starts are told apart from everything else
        proc = subprocess.Popen(
            cmd, cwd=launch, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Started(proc, launch, log)


def wait_until_running(run: Started, process: str) -> str:
    """Wait until a task of `process` has started (its .command.begin exists); its name."""
    submitted = re.compile(rf"\[(\w\w/\w+)\] Submitted process > (\S*:{process} \([^)]*\))")
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        for short_hash, name in submitted.findall(run.log.read_text()):
            if list((run.launch / "work").glob(f"{short_hash}*/.command.begin")):
                return name
        if run.proc.poll() is not None:
            stop(run, signal.SIGKILL)
            pytest.fail(
                f"nextflow ended ({run.proc.returncode}) before {process} ran:\n"
                f"{run.log.read_text()[-4000:]}"
            )
        time.sleep(0.1)
    stop(run, signal.SIGKILL)
    pytest.fail(f"{process} did not start within {WAIT_S} s:\n{run.log.read_text()[-4000:]}")


def stop(run: Started, sig: signal.Signals) -> None:
    """Signal the Nextflow process by its PID, then wait until every task it started is gone
    (a SIGKILLed Nextflow leaves its running task to finish on its own, within seconds here)."""
    if run.proc.poll() is None:
        os.kill(run.proc.pid, sig)
    run.proc.wait(timeout=120)
    deadline = time.monotonic() + 120
    while _group_alive(run.proc.pid):
        if time.monotonic() > deadline:
            # still running after two minutes: stop what this run started, and say so
            os.killpg(run.proc.pid, signal.SIGKILL)
            pytest.fail(f"tasks of the stopped run were still running after 120 s ({run.launch})")
        time.sleep(0.2)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)  # signal 0: only asks whether the group still has a process
    except ProcessLookupError:
        return False
    return True


def tables(outdir: Path) -> dict[str, bytes]:
    """Relative path -> content of every file under the compared folders."""
    found = {
        str(path.relative_to(outdir)): path.read_bytes()
        for folder in COMPARED
        for path in sorted((outdir / folder).rglob("*"))
        if path.is_file()
    }
    assert found, f"no tables under {outdir}/{{{','.join(COMPARED)}}}"
    return found


def statuses(run: Run) -> dict[str, str]:
    """Task name -> status in the run's own trace (one row per task)."""
    return {row["name"]: row["status"] for row in latest_trace(run.outdir)}


def two_runs_per_sample(folder: Path) -> Path:
    """The bundled samplesheet's reads, each file cut in two runs (first half, second half)."""
    folder.mkdir()
    rows = []
    for line in (TEST_DATA / "samplesheet.csv").read_text().splitlines()[1:]:
        sample, *files = line.split(",")
        halves: list[list[str]] = [[], []]
        for name in filter(None, files):
            with gzip.open(TEST_DATA / name, "rt") as fh:
                lines = fh.readlines()
            middle = len(lines) // 8 * 4  # whole FASTQ records
            for run, part in enumerate((lines[:middle], lines[middle:])):
                path = folder / f"run{run + 1}_{name}"
                with gzip.open(path, "wt") as out:
                    out.writelines(part)
                halves[run].append(str(path))
        for run, paths in enumerate(halves):
            mates = paths + [""] * (2 - len(paths))
            rows.append(f"{sample},run{run + 1},ILLUMINA,{mates[0]},{mates[1]},")
    sheet = folder / "runs.csv"
    sheet.write_text(
        "sample,run_accession,instrument_platform,fastq_1,fastq_2,fasta\n" + "\n".join(rows) + "\n"
    )
    return sheet


# --- one clean run -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Run:
    _skip_without_tools()
    return ok(nextflow(tmp_path_factory.mktemp("clean"), "-profile", "test", *ONE_TIER))


# --- killed twice, resumed -----------------------------------------------------------------------


@dataclass
class Chain:
    killed_task: str  # the MMSEQS_TAXONOMY task running when Nextflow was SIGKILLed
    stopped_task: str  # the HYTAX_PREDICT task running when Nextflow got SIGTERM
    after_kill: Run  # the -resume run that was then stopped
    final: Run  # the -resume run that finished


@pytest.fixture(scope="module")
def chain(clean: Run, tmp_path_factory: pytest.TempPathFactory) -> Chain:
    launch = tmp_path_factory.mktemp("faults")
    sheet = two_runs_per_sample(launch / "runs")
    first = start(launch, "killed", "-profile", "test", "--input", str(sheet), *ONE_TIER)
    try:
        killed = wait_until_running(first, "MMSEQS_TAXONOMY")
    finally:
        stop(first, signal.SIGKILL)
    second = start(launch, "stopped", "-profile", "test", "--input", str(sheet), *ONE_TIER,
                   "-resume")
    try:
        stopped = wait_until_running(second, "HYTAX_PREDICT")
    finally:
        stop(second, signal.SIGTERM)
    after_kill = Run(launch, launch / "results", second.proc.returncode, second.log.read_text())
    final = ok(nextflow(launch, "-profile", "test", "--input", str(sheet), *ONE_TIER, "-resume"))
    return Chain(killed, stopped, after_kill, final)


def test_resume_after_sigkill_reuses_what_was_done(chain: Chain) -> None:
    """The SIGKILLed run had prepared the sample and built the database its running
    MMSEQS_TAXONOMY task searched: the resumed run must take those from the cache."""
    assert chain.after_kill.returncode != 0, "the SIGTERMed run claims success"
    sample, db = re.search(r"\((\S+):(\S+)\)$", chain.killed_task).groups()
    before = statuses(chain.after_kill)
    upstream = {
        name: status
        for name, status in before.items()
        if name.endswith(f":HYTAX_PREPARE ({sample})")
        or (":PREPARE_REFERENCE:" in name and name.endswith(f" ({db})"))
    }
    assert len(upstream) >= 2 and set(upstream.values()) == {"CACHED"}, (
        f"after the SIGKILL during {chain.killed_task}, finished tasks ran again: {upstream}"
    )


def test_resume_after_sigterm_reuses_mmseqs2_and_matches_a_clean_run(
    chain: Chain, clean: Run
) -> None:
    final = statuses(chain.final)
    assert set(final) == set(statuses(clean)), "the resumed run has other tasks than a clean one"
    sample = re.search(r"\((\S+)\)$", chain.stopped_task).group(1)
    upstream = {
        name: status for name, status in final.items() if f":MMSEQS_TAXONOMY ({sample}:" in name
    }
    assert upstream and set(upstream.values()) == {"CACHED"}, (
        f"after the SIGTERM during {chain.stopped_task}, finished tasks ran again: {upstream}"
    )
    assert final[chain.stopped_task] == "COMPLETED", "the stopped task did not run again"
    assert "Cached process > " in chain.final.log
    got, want = tables(chain.final.outdir), tables(clean.outdir)
    assert sorted(got) == sorted(want)
    differ = [name for name in want if got[name] != want[name]]
    assert not differ, (
        f"tables of the two-run samples, killed and resumed, differ from a clean run's: {differ}"
    )


# --- a task killed for memory is retried with more -----------------------------------------------


def _gigabytes(memory: str) -> float:
    number, unit = memory.split()
    return float(number) * {"MB": 1 / 1024, "GB": 1, "TB": 1024}[unit]


def test_out_of_memory_exit_is_retried_with_more_memory(tmp_path: Path) -> None:
    """HYTAX_PREPARE exits 137 (what the kernel's OOM killer gives) on its first attempt only;
    conf/base.config must retry it once with twice the memory. Stub tasks keep this quick: the
    retry rule does not depend on what the script does."""
    _skip_without_tools()
    config = tmp_path / "oom.config"
    config.write_text(
        "process {\n"
        "    resourceLimits = [cpus: 2, memory: 16.GB, time: 1.h]\n"
        "    withName: '.*:HYTAX_PREPARE' {\n"
        "        beforeScript = { task.attempt == 1 ? 'exit 137' : 'true' }\n"
        "    }\n"
        "}\n"
    )
    run = ok(nextflow(tmp_path / "launch", "-profile", "test", "-stub", "-c", str(config)))
    rows = [row for row in latest_trace(run.outdir) if row["process"].endswith(":HYTAX_PREPARE")]
    for sample in ("sample1", "sample2"):
        attempts = {row["attempt"]: row for row in rows if row["tag"] == sample}
        assert sorted(attempts) == ["1", "2"], f"{sample}: attempts {sorted(attempts)}"
        first, second = attempts["1"], attempts["2"]
        assert (first["status"], first["exit"]) == ("FAILED", "137"), first
        assert second["status"] == "COMPLETED", second
        assert _gigabytes(second["memory"]) == 2 * _gigabytes(first["memory"]), (first, second)
    assert "terminated with an error exit status (137) -- Execution is retried" in run.log


# --- a corrupt model stops the run before any task -----------------------------------------------


def test_corrupt_model_stops_the_run_before_any_task(tmp_path: Path) -> None:
    _skip_without_tools()
    model = tmp_path / "model"
    model.mkdir()
    bundled = REPO / "assets" / "models" / "hytax-mini"
    (model / "config.json").write_bytes((bundled / "config.json").read_bytes())
    weights = (bundled / "model.safetensors").read_bytes()
    (model / "model.safetensors").write_bytes(weights[: len(weights) // 2])  # an interrupted copy
    run = nextflow(tmp_path / "launch", "-profile", "test", "--model", str(model))
    assert run.returncode != 0
    assert (
        f"--model {model}: model.safetensors: the tensors end at byte" in run.log
        and "truncated (an incomplete copy or download?)" in run.log
    ), run.log[-3000:]
    assert "Submitted process" not in run.log
