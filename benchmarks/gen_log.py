"""Generate a big rawjson log by replicating a real capture.

    python benchmarks/gen_log.py OUT.jsonl [--vertices 5000] [--mb 50] [--template FILE] [--seed 1]

Each copy of the template (default testdata/rawjson/multistage-cold.jsonl, a
real `docker buildx build --progress=rawjson` capture) gets fresh vertex
digests (inputs rewired to the copy's own digests), timestamps shifted so the
copies run one after the other, and stage names made unique
(`[builder 2/2]` -> `[builder-17 2/2]`). The template's vertex updates and
statuses are kept as they are; every RUN vertex that runs gets log output
between its start and its completion, in the shape buildx writes
(`{"logs":[{"vertex":…,"stream":1,"data":<base64>,"timestamp":…}]}`), with
chunk sizes from a single short line to 16 KiB bursts, mostly stdout, some
stderr. Logs fill the file up to the requested size. Lines are serialised
the way Go's encoding/json does (no spaces, `<`, `>`, `&` as \\u003c…).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import random
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "testdata" / "rawjson" / "multistage-cold.jsonl"

_TS = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z")
_STAGE = re.compile(r"^\[([A-Za-z0-9_.-]+) (\d+/\d+)\]")

_WORDS = ("compiling", "linking", "building", "fetching", "resolving", "installing", "collecting",
          "module", "package", "object", "crate", "wheel", "src", "lib", "pkg", "internal", "util",
          "warning:", "note:", "done", "ok", "cached", "generated", "target", "release", "debug")


def _go_json(obj: object) -> str:
    s = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") \
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _ns(ts: str) -> int:
    """RFC 3339 (UTC, Z) -> integer nanoseconds (enough for shifting)."""
    import calendar
    import time

    m = _TS.fullmatch(ts)
    if m is None:
        raise ValueError(ts)
    secs = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    frac = (m.group(2) or "").ljust(9, "0")[:9]
    return secs * 1_000_000_000 + int(frac)


def _ts(ns: int) -> str:
    import time

    secs, frac = divmod(ns, 1_000_000_000)
    out = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if frac:
        out += "." + f"{frac:09d}".rstrip("0")
    return out + "Z"


def _log_text(rng: random.Random, size: int) -> bytes:
    """Build output-like text of about `size` bytes (whole lines)."""
    parts: list[str] = []
    n = 0
    while n < size:
        k = rng.randint(3, 12)
        line = " ".join(rng.choice(_WORDS) if rng.random() < 0.7 else f"{rng.choice(_WORDS)}_{rng.randint(0, 99999)}"
                        for _ in range(k))
        if rng.random() < 0.1:
            line = f"[{rng.randint(1, 999):>3}/{rng.randint(999, 2000)}] " + line
        parts.append(line)
        n += len(line) + 1
    return ("\n".join(parts) + "\n").encode()


def _chunk_size(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.75:
        return rng.randint(30, 200)  # one line, flushed as it comes
    if r < 0.95:
        return rng.randint(200, 4096)  # a few lines
    return rng.randint(4096, 16384)  # a burst


def generate(out: Path, vertices: int = 5000, mb: float = 50.0, template: Path = TEMPLATE, seed: int = 1) -> dict:
    rng = random.Random(seed)
    lines = [ln for ln in template.read_text(encoding="utf-8").splitlines() if ln.strip()]
    objs = []
    for ln in lines:
        try:
            objs.append(json.loads(ln))
        except ValueError:
            objs.append(ln)  # plain text of buildx (kept as is)
    digests: list[str] = []
    times: list[int] = []
    run_vertices: set[str] = set()

    def scan(o: object) -> None:
        if isinstance(o, dict):
            for k, v in o.items():
                if k == "digest" and isinstance(v, str):
                    if v not in digests:
                        digests.append(v)
                    name = o.get("name") or ""
                    if re.search(r"\] RUN ", name):
                        run_vertices.add(v)
                elif k in ("started", "completed", "timestamp") and isinstance(v, str):
                    times.append(_ns(v))
                else:
                    scan(v)
        elif isinstance(o, list):
            for x in o:
                scan(x)

    for o in objs:
        scan(o)
    t_first, t_last = min(times), max(times)
    span = t_last - t_first + 50_000_000  # a copy's duration plus a gap
    copies = max(1, math.ceil(vertices / len(digests)))
    target_bytes = int(mb * 1_000_000)
    # bytes of one copy without logs, to know how much log text each copy needs
    base_copy = sum(len(_go_json(o)) + 1 if not isinstance(o, str) else len(o) + 1 for o in objs)
    log_budget = max(0, target_bytes - base_copy * copies) / copies / max(1, len(run_vertices))
    # a log line: base64 (4/3 of the data) plus ~140 bytes of JSON around it, for
    # chunks of ~1 KB on average
    log_bytes_per_vertex = int(log_budget / 1.47)

    written = 0
    n_lines = 0
    n_logs = 0
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        for c in range(copies):
            mapping = {d: "sha256:" + hashlib.sha256(f"{seed}:{c}:{d}".encode()).hexdigest() for d in digests}
            shift = c * span

            def rewrite(o: object) -> object:
                if isinstance(o, dict):
                    r = {}
                    for k, v in o.items():
                        if isinstance(v, str):
                            if k in ("digest", "vertex"):
                                v = mapping.get(v, v)
                            elif k in ("started", "completed", "timestamp"):
                                v = _ts(_ns(v) + shift)
                            elif k == "name" and c:
                                v = _STAGE.sub(lambda m: f"[{m.group(1)}-{c} {m.group(2)}]", v)
                        elif k == "inputs" and isinstance(v, list):
                            v = [mapping.get(x, x) for x in v]
                        else:
                            v = rewrite(v)
                        r[k] = v
                    return r
                if isinstance(o, list):
                    return [rewrite(x) for x in o]
                return o

            for o in objs:
                if isinstance(o, str):
                    line = o
                else:
                    no = rewrite(o)
                    line = _go_json(no)
                f.write(line + "\n")
                written += len(line) + 1
                n_lines += 1
                if isinstance(o, dict):
                    # a RUN that just started (not completed in this update): its output follows
                    for vd in o.get("vertexes") or []:
                        d = vd.get("digest")
                        if d in run_vertices and vd.get("started") and not vd.get("completed"):
                            vx = mapping[d]
                            t0 = _ns(vd["started"]) + shift
                            text = _log_text(rng, log_bytes_per_vertex)
                            pos = 0
                            nchunks = 0
                            while pos < len(text):
                                size = _chunk_size(rng)
                                chunk = text[pos:pos + size]
                                pos += size
                                nchunks += 1
                                entry = {"vertex": vx, "stream": 2 if rng.random() < 0.1 else 1,
                                         "data": base64.b64encode(chunk).decode("ascii"),
                                         "timestamp": _ts(t0 + 1000 + nchunks * 97_000)}
                                line = _go_json({"logs": [entry]})
                                f.write(line + "\n")
                                written += len(line) + 1
                                n_lines += 1
                                n_logs += 1
    return {"path": str(out), "bytes": written, "lines": n_lines, "log_lines": n_logs,
            "vertices": copies * len(digests), "copies": copies, "template": str(template)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--vertices", type=int, default=5000, help="at least this many vertices (default 5000)")
    ap.add_argument("--mb", type=float, default=50.0, help="about this many MB (10^6 bytes; default 50)")
    ap.add_argument("--template", type=Path, default=TEMPLATE)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    info = generate(a.out, a.vertices, a.mb, a.template, a.seed)
    json.dump(info, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
