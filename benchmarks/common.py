"""Shared helpers of the benchmarks: timing, child processes, results, machine facts.

Standard library only, so that the benchmarks also run where cachewhy's own
dependencies are missing (the figures that need them say so).
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"

# where generated fixtures live between runs (big: ~2 GB for a full run)
DEFAULT_FIXTURES = Path(tempfile.gettempdir()) / "cachewhy-bench"


# --------------------------------------------------------------------------
# results


@dataclass
class Row:
    """One line of the results table."""

    figure: str  # "1a", "2b", ...
    name: str  # what was measured
    ours: float | None  # seconds (or what `unit` says)
    reference: float | None
    ref_name: str  # what the reference is
    ratio: float | None  # ours / reference, or as the target defines it
    target: str  # "<= 1.10", "< 0.15 s", "info"
    passed: bool | None  # None: no target (info) or not measured
    unit: str = "s"
    notes: str = ""
    samples: dict = field(default_factory=dict)  # raw numbers, for the JSON

    def status(self) -> str:
        if self.passed is None:
            return "n/a" if self.ours is None else "info"
        return "PASS" if self.passed else "FAIL"

    def to_json(self) -> dict:
        out = asdict(self)
        out["status"] = self.status()
        return out


def not_measured(figure: str, name: str, target: str, why: str) -> Row:
    return Row(figure, name, None, None, "", None, target, None, notes=why)


def fmt_value(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "s":
        if v < 0.01:
            return f"{v * 1000:.2f} ms"
        if v < 1:
            return f"{v * 1000:.0f} ms"
        return f"{v:.2f} s"
    if unit == "MB":
        return f"{v:.1f} MB"
    if unit == "MB/s":
        return f"{v:.0f} MB/s"
    if unit == "B":
        return f"{v:,.0f} B"
    return f"{v:.3g} {unit}".rstrip()


def table(rows: Sequence[Row], markdown: bool = False) -> str:
    head = ["fig", "figure", "ours", "reference", "ratio", "target", "result"]
    body = []
    for r in rows:
        ref = fmt_value(r.reference, r.unit)
        if r.ref_name and r.reference is not None:
            ref = f"{ref} ({r.ref_name})"
        body.append([r.figure, r.name, fmt_value(r.ours, r.unit), ref,
                     "-" if r.ratio is None else f"{r.ratio:.3f}", r.target, r.status()])
    if markdown:
        esc = lambda s: s.replace("|", "\\|")
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(str(x[i])) for x in [head, *body]) for i in range(len(head))]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in body]
    return "\n".join(out)


# --------------------------------------------------------------------------
# statistics


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def spread(xs: Sequence[float]) -> dict:
    return {"n": len(xs), "median": median(xs), "min": min(xs), "max": max(xs),
            "values": [round(x, 6) for x in xs]}


def alternate(ours: Callable[[], float], ref: Callable[[], float], pairs: int, warmup: int = 1,
              log: Callable[[str], None] | None = None, label: str = "") -> dict:
    """Run `ours` and `ref` alternately (ABBA order: which one goes first
    swaps every pair), after `warmup` untimed runs of each. Each callable
    returns the seconds it measured. Returns the samples and the median of
    the per-pair ratios (drift of the machine's load cancels out within a
    pair)."""
    for _ in range(warmup):
        ref()
        ours()
    a: list[float] = []
    b: list[float] = []
    for i in range(pairs):
        if i % 2 == 0:
            tb = ref()
            ta = ours()
        else:
            ta = ours()
            tb = ref()
        a.append(ta)
        b.append(tb)
        if log:
            log(f"  {label} pair {i + 1}/{pairs}: ours {ta:.3f}s ref {tb:.3f}s ratio {ta / tb:.3f}")
    ratios = [x / y for x, y in zip(a, b)]
    return {"ours": spread(a), "ref": spread(b), "ratios": [round(r, 4) for r in ratios],
            "ratio": median(ratios)}


# --------------------------------------------------------------------------
# child processes


@dataclass
class ChildResult:
    wall: float  # seconds from spawn to exit
    returncode: int
    maxrss_kb: int  # peak resident set of the child (ru_maxrss)
    user: float
    sys: float
    stdout: str = ""


def run_child(cmd: Sequence[str], *, env: dict | None = None, cwd: str | Path | None = None,
              stdout_to: int | None = subprocess.DEVNULL, stderr_to: int | None = subprocess.DEVNULL,
              capture: bool = False, timeout: float | None = None, check: bool = True) -> ChildResult:
    """Spawn, reap with wait4() and report the wall time and the child's own rusage.

    `timeout`: the child is killed after that many seconds (returncode -9)."""
    import threading

    t0 = time.perf_counter()
    p = subprocess.Popen(list(cmd), env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE if capture else stdout_to, stderr=stderr_to)
    timer = threading.Timer(timeout, p.kill) if timeout else None
    if timer is not None:
        timer.start()
    out = ""
    try:
        if capture:
            assert p.stdout is not None
            out = p.stdout.read().decode("utf-8", "replace")
            p.stdout.close()
        _, status, ru = os.wait4(p.pid, 0)
    finally:
        if timer is not None:
            timer.cancel()
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    res = ChildResult(wall, p.returncode, ru.ru_maxrss, ru.ru_utime, ru.ru_stime, out)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {res.returncode}")
    return res


def python_child(code: str, *args: str, env: dict | None = None, timeout: float | None = None) -> tuple[dict, ChildResult]:
    """Run `code` in a fresh interpreter (this one's, with the repo on sys.path);
    it prints one JSON object as its last stdout line."""
    e = dict(env or os.environ)
    e["PYTHONPATH"] = str(REPO) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    res = run_child([sys.executable, "-c", code, *args], env=e, capture=True, timeout=timeout,
                    stderr_to=None, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"benchmark child exited {res.returncode}: {res.stdout[-2000:]}")
    last = [ln for ln in res.stdout.splitlines() if ln.strip()][-1]
    return json.loads(last), res


# --------------------------------------------------------------------------
# the machine


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def cpu_model() -> str:
    m = re.search(r"^model name\s*:\s*(.+)$", _read("/proc/cpuinfo"), re.MULTILINE)
    return m.group(1).strip() if m else platform.processor() or "?"


def mem_total_gb() -> float | None:
    m = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"), re.MULTILINE)
    return round(int(m.group(1)) / 1024 / 1024, 1) if m else None


def tool_version(cmd: Sequence[str], env: dict | None = None) -> str | None:
    try:
        out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=20, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return (out.stdout.strip() or out.stderr.strip()).splitlines()[0] if (out.stdout or out.stderr) else None


def machine_info(env: dict | None = None) -> dict:
    info = {
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gb": mem_total_gb(),
        "cpu_model": cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "loadavg_at_start": _read("/proc/loadavg").split()[:3],
        "git": tool_version(["git", "--version"]),
        "jq": tool_version(["jq", "--version"]),
        "sha256sum": tool_version(["sha256sum", "--version"]),
    }
    if env is not None and shutil.which("docker", path=env.get("PATH")):
        docker = shutil.which("docker", path=env.get("PATH"))
        info["dockerd"] = tool_version([docker, "version", "--format", "{{.Server.Version}}"], env=env)
        info["docker_cli"] = tool_version([docker, "version", "--format", "{{.Client.Version}}"], env=env)
        info["buildx"] = tool_version([docker, "buildx", "version"], env=env)
    return info


class LoadProbe:
    """How busy the machine was while a figure ran: all CPUs (from /proc/stat)
    and this process with its reaped children (os.times)."""

    def __init__(self) -> None:
        self.t0 = time.time()
        self.stat0 = self._stat()
        self.times0 = os.times()
        self.load0 = _read("/proc/loadavg").split()[:1]

    @staticmethod
    def _stat() -> tuple[int, int] | None:
        line = _read("/proc/stat").splitlines()[:1]
        if not line or not line[0].startswith("cpu "):
            return None
        vals = [int(x) for x in line[0].split()[1:]]
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
        return sum(vals[:8]), idle

    def finish(self) -> dict:
        wall = time.time() - self.t0
        s1, t1 = self._stat(), os.times()
        out: dict = {"wall_s": round(wall, 1), "loadavg1_start": self.load0,
                     "loadavg1_end": _read("/proc/loadavg").split()[:1]}
        ours = (t1.user - self.times0.user + t1.system - self.times0.system
                + t1.children_user - self.times0.children_user
                + t1.children_system - self.times0.children_system)
        ncpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if self.stat0 and s1 and wall > 0:
            total = s1[0] - self.stat0[0]
            busy = total - (s1[1] - self.stat0[1])
            hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
            out["machine_busy_cpus"] = round(busy / hz / wall, 2)  # CPUs kept busy, all processes
        out["ours_busy_cpus"] = round(ours / wall, 2) if wall > 0 else None
        if "machine_busy_cpus" in out and out["ours_busy_cpus"] is not None:
            out["others_busy_cpus"] = round(max(0.0, out["machine_busy_cpus"] - out["ours_busy_cpus"]), 2)
        out["cpus"] = ncpu
        return out


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cachewhy_command() -> list[str]:
    """How a user runs cachewhy: the console script next to this interpreter
    (the venv's), else `python -m analyzer`."""
    exe = Path(sys.executable).parent / "cachewhy"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("cachewhy")
    if found:
        return [found]
    return [sys.executable, "-m", "analyzer"]


def has_command(argv: Sequence[str], env: dict | None = None) -> bool:
    """Does `cachewhy <argv> --help` work (the command exists)?"""
    e = dict(env or os.environ)
    e["PYTHONPATH"] = str(REPO)
    try:
        out = subprocess.run([sys.executable, "-m", "analyzer", *argv, "--help"], capture_output=True,
                             timeout=30, env=e, cwd=REPO)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0
