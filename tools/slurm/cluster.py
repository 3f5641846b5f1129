#!/usr/bin/env python3
"""A single-node Slurm cluster on this machine, to try and test `-profile slurm`.

    python tools/slurm/cluster.py start STATE_DIR [--partition cpu --partition gpu]
    export SLURM_CONF=STATE_DIR/slurm.conf      # what `start` prints; sbatch, squeue use it
    nextflow run . -profile test,slurm --outdir results
    python tools/slurm/cluster.py stop STATE_DIR

`start` writes STATE_DIR/slurm.conf for this host (its CPUs and memory as `slurmd -C` reports
them, free TCP ports), starts slurmctld and then slurmd in the foreground mode (-D) as
background processes, records their PIDs in STATE_DIR/daemons.pid and waits until the node
takes jobs. `stop` signals exactly those PIDs. Every partition holds the one node; the first is
the default. Needs Debian's slurm-wlm (22.05) and root (slurmd starts jobs as their user).
Authentication is `auth/none`, so no munged runs: this cluster is for one trusted machine only.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

DAEMONS = ("slurmctld", "slurmd")
PID_FILE = "daemons.pid"
READY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30


class ClusterError(Exception):
    """The cluster could not be started or stopped; the message says why."""


def slurm_binary(name: str) -> str:
    """Path of a Slurm program; the daemons live in /usr/sbin, often not on a user's PATH."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if found is None:
        raise ClusterError(f"{name} not found: install Debian's slurm-wlm (make slurm)")
    return found


def node_spec() -> str:
    """This machine as slurm.conf describes a node (CPUs, sockets, cores, RealMemory)."""
    out = subprocess.run([slurm_binary("slurmd"), "-C"], capture_output=True, text=True,
                         check=True).stdout
    fields = out.splitlines()[0].split()
    return " ".join(f for f in fields if not f.startswith(("NodeName=", "UpTime=")))


def free_ports(n: int) -> list[int]:
    """Ports nothing listens on now, so a second cluster (or a system one) never clashes."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def write_config(state: Path, partitions: list[str]) -> Path:
    host = socket.gethostname().split(".")[0]
    ctld_port, slurmd_port = free_ports(2)
    for sub in ("ctld", "spool"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    lines = [
        "ClusterName=hytax",
        f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={ctld_port}",
        f"SlurmdPort={slurmd_port}",
        "SlurmUser=root",
        "SlurmdUser=root",
        # one trusted machine: no munged to start, no key to share
        "AuthType=auth/none",
        "CredType=cred/none",
        f"StateSaveLocation={state / 'ctld'}",
        f"SlurmdSpoolDir={state / 'spool'}",
        f"SlurmctldPidFile={state / 'slurmctld.pidfile'}",
        f"SlurmdPidFile={state / 'slurmd.pidfile'}",
        f"SlurmctldLogFile={state / 'slurmctld.log'}",
        f"SlurmdLogFile={state / 'slurmd.log'}",
        f"PlugStackConfig={state / 'plugstack.conf'}",
        # no cgroups: they need a systemd-managed hierarchy most containers do not offer
        "ProctrackType=proctrack/pgid",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none",
        "MpiDefault=none",
        "SchedulerType=sched/backfill",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "ReturnToService=2",
        f"NodeName={host} NodeAddr=127.0.0.1 {node_spec()} State=UNKNOWN",
    ]
    for i, partition in enumerate(partitions):
        default = "YES" if i == 0 else "NO"
        lines.append(f"PartitionName={partition} Nodes={host} Default={default} "
                     "MaxTime=INFINITE State=UP")
    (state / "plugstack.conf").write_text("", encoding="utf-8")
    conf = state / "slurm.conf"
    conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return conf


def _alive(pid: int) -> bool:
    """Running (a zombie has finished: it only waits for its parent to collect it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _reap(pid: int) -> None:
    """Collect the exit status when this process started the daemon (a test fixture), so no
    zombie is left; started by an earlier `cluster.py start`, its new parent collects it."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _ours(pid: int, conf: Path) -> bool:
    """The PID still runs a daemon of this cluster (not a later process given the same PID)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(conf).encode() in cmdline


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait(state: Path, pids: dict[str, int], ready, what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    env = {**os.environ, "SLURM_CONF": str(state / "slurm.conf")}
    while time.monotonic() < deadline:
        for name, pid in pids.items():
            if not _alive(pid):
                raise ClusterError(f"{name} (PID {pid}) exited while starting:\n"
                                   f"{_log_tail(state / f'{name}.log')}\n"
                                   f"{_log_tail(state / f'{name}.out')}")
        if ready(env):
            return
        time.sleep(0.5)
    raise ClusterError(f"{what} not ready after {READY_TIMEOUT_S} s; see {state}/*.log")


def _controller_up(env: dict[str, str]) -> bool:
    ping = subprocess.run([slurm_binary("scontrol"), "ping"], env=env, capture_output=True,
                          text=True)
    return "is UP" in ping.stdout


def _node_idle(env: dict[str, str]) -> bool:
    info = subprocess.run([slurm_binary("sinfo"), "-h", "-N", "-o", "%T"], env=env,
                          capture_output=True, text=True)
    return info.stdout.split()[:1] == ["idle"]


def start(state: Path, partitions: list[str]) -> dict[str, int]:
    """Start slurmctld and slurmd for `state`; returns {daemon: PID} once the node is idle."""
    if os.geteuid() != 0:
        raise ClusterError("slurmd must run as root to start jobs (run as root, e.g. in CI)")
    state = state.resolve()
    if (state / PID_FILE).exists():
        raise ClusterError(f"{state / PID_FILE} exists: stop that cluster first")
    conf = write_config(state, partitions)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    pids: dict[str, int] = {}
    try:
        for name, extra in (("slurmctld", ["-i"]), ("slurmd", [])):
            with open(state / f"{name}.out", "wb") as out:
                # -D: stay in the foreground, so the PID we record is the daemon's own
                proc = subprocess.Popen([slurm_binary(name), "-D", "-f", str(conf), *extra],
                                        env=env, stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
            pids[name] = proc.pid
            (state / PID_FILE).write_text(
                "".join(f"{n}\t{p}\n" for n, p in pids.items()), encoding="utf-8")
            if name == "slurmctld":
                _wait(state, pids, _controller_up, "slurmctld")
        _wait(state, pids, _node_idle, "the node")
    except BaseException:
        stop(state)
        raise
    return pids


def stop(state: Path) -> list[str]:
    """Signal the daemons `start` recorded under `state` (only those PIDs) and wait for them to
    exit; returns what was stopped."""
    state = state.resolve()
    record = state / PID_FILE
    if not record.is_file():
        return []
    conf = state / "slurm.conf"
    entries = [line.split("\t") for line in record.read_text().splitlines() if line.strip()]
    stopped: list[str] = []
    # the node first, then its controller
    for name, pid_text in sorted(entries, key=lambda e: DAEMONS.index(e[0]), reverse=True):
        pid = int(pid_text)
        if not (_alive(pid) and _ours(pid, conf)):
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        _reap(pid)
        stopped.append(f"{name} {pid}")
    record.unlink()
    return stopped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("state", type=Path, help="folder for slurm.conf, state, logs and PIDs")
    parser.add_argument("--partition", action="append",
                        help="partition name (repeat; the first is the default; default: debug)")
    args = parser.parse_args()
    try:
        if args.action == "start":
            pids = start(args.state, args.partition or ["debug"])
            started = ", ".join(f"{n} {p}" for n, p in pids.items())
            print(f"started {started}", file=sys.stderr)
            print(f"export SLURM_CONF={args.state.resolve() / 'slurm.conf'}")
        else:
            stopped = stop(args.state)
            print(f"stopped {', '.join(stopped) or 'nothing'}", file=sys.stderr)
    except ClusterError as exc:
        print(f"cluster.py {args.action}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
