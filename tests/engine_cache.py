"""Remove one project's records from the engine's build cache, and nothing else.

Used by the engine tests and docs/causes/generate.py to evict a build's cache
the way `docker buildx prune -af` would for that project, without destroying
the rest of a shared engine's cache."""

from __future__ import annotations

import json
import subprocess


def cache_records() -> list[dict]:
    out = subprocess.run(["docker", "buildx", "du", "--format", "json"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, timeout=120, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def evict(nonce: str) -> None:
    """Remove every cache record of the steps whose text holds `nonce`, and every
    record built on top of them. BuildKit prunes a record only once nothing is
    built on it, so the leaves go first, round after round. RuntimeError if
    some remain."""
    chosen: set[str] = set()
    for _ in range(10):
        records = cache_records()
        chosen = {r["ID"] for r in records if nonce in (r.get("Description") or "")}
        grew = True
        while grew:
            grew = False
            for r in records:
                if r["ID"] not in chosen and set(r.get("Parents") or []) & chosen:
                    chosen.add(r["ID"])
                    grew = True
        if not chosen:
            return
        parents = {p for r in records if r["ID"] in chosen for p in r.get("Parents") or []}
        for rid in sorted((chosen - parents) or chosen):
            subprocess.run(["docker", "buildx", "prune", "-af", "--filter", f"id={rid}"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=120, check=True)
    raise RuntimeError(f"cache records of {nonce} are still there after pruning: {sorted(chosen)}")
