"""What every benchmark script shares: this checkout on ``sys.path``, where results go, the command, the machine
and the memory of processes.

Every script in ``benchmarks/`` starts with ``from common import ...`` (the script's own folder is on ``sys.path``
when it runs as ``python benchmarks/<script>.py``), so it imports ``fer_hf`` from this checkout, never from
another installed copy. Each benchmark writes one result, ``benchmarks/results/<script>.md`` (and the raw
numbers beside it as ``<script>.json`` where it has them): a rerun replaces the result, git keeps the history.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
#: The real data of the project (third-party, never committed); every script takes ``--data`` to point elsewhere.
DATA = REPO.parent / "shared" / "data"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

#: CPU flags that change how fast torch and onnxruntime run here (bf16 autocast, int8 kernels).
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8")


def result_path(script: str, suffix: str = ".md") -> Path:
    """``benchmarks/results/<script><suffix>``: the one results file of a benchmark (``script`` without ``.py``)."""
    return RESULTS / f"{script}{suffix}"


def command_line(script: str, argv: list[str] | None = None) -> str:
    """The command as a user types it from the repository root: ``python benchmarks/<script>.py ARGS``."""
    argv = sys.argv[1:] if argv is None else argv
    return " ".join(["python", f"benchmarks/{script}.py", *(shlex.quote(a) for a in argv)])


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """Which of ``CPU_FLAGS`` this CPU has (the ``flags`` line lscpu shows), in that order."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return [flag for flag in CPU_FLAGS if flag in flags]


def machine() -> dict:
    """The machine a result was measured on: CPU, cores, flags, OS, Python, torch and the load when asked."""
    description = {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "cpu_flags": cpu_flags(),
                   "platform": platform.platform(), "python": platform.python_version()}
    torch = sys.modules.get("torch")
    if torch is not None:
        description.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
    if hasattr(os, "getloadavg"):
        description["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return description


def write_text(path: str | Path, text: str) -> Path:
    """Write a results file whole (through a temporary file beside it, so a killed run leaves the old one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(text if text.endswith("\n") else text + "\n")
    os.replace(staging, path)
    return path


def write_json(path: str | Path, data) -> Path:
    """``write_text`` of ``data`` as indented JSON."""
    return write_text(path, json.dumps(data, indent=1))


def update_keyed(path: str | Path, key: str, result: dict) -> dict:
    """Put ``result`` under ``key`` in the JSON file ``{"runs": {key: result, ...}}`` and return every run.

    For benchmarks measured per model or per setting: a rerun for one key replaces that key's result and
    keeps the others (each run carries its own command and date)."""
    path = Path(path)
    runs = json.loads(path.read_text()).get("runs", {}) if path.is_file() else {}
    runs[key] = result
    write_json(path, {"runs": runs})
    return runs


# Memory, in MB = 10^6 bytes (benchmarks/concurrency.py results written before 2026-11-23 used 2^20-byte "MB",
# read from /proc; the difference is 4.9%).

def rss_mb(pid: int | None = None, *, descendants: bool = False) -> float:
    """Resident set size of process ``pid`` (default: this process), in MB, read with psutil.

    With ``descendants=True`` the RSS of all its children, their children, ... is added (a server and its
    workers, a CLI and the processes it starts). A process that is gone (or a zombie) counts 0.0; a ``pid``
    that does not exist at all returns 0.0.
    """
    import psutil

    try:
        process = psutil.Process(pid)
        processes = [process, *process.children(recursive=True)] if descendants else [process]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for each in processes:
        try:
            total += each.memory_info().rss
        except psutil.NoSuchProcess:  # also psutil.ZombieProcess
            pass
    return total / 1e6


def peak_rss_mb() -> float:
    """This process's peak resident set size so far (``getrusage`` ``ru_maxrss``; the kernel's VmHWM), in MB."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6  # bytes on macOS, KB on Linux
