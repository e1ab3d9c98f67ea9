"""The build graph: one node per vertex digest, edges from its inputs.

Each node carries what a user asks of a step: its Dockerfile instruction and
line, its stage, how long it took and its status. The status tells real
rebuilt steps apart from sources (the build context, a base image) and
internal bookkeeping vertices, whose `cached` flag says nothing about the
cache (a FROM of a locally resolved image reports `cached: false` on every
warm build; the build context is never `cached`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable

from analyzer import dockerfile as dfmod
from analyzer.collector import paused
from analyzer.events import BuildEvents, Vertex, _parse_ns, parse_time, possible_ns

if TYPE_CHECKING:
    import networkx as nx


class Status(str, enum.Enum):
    CACHED = "cached"
    REBUILT = "rebuilt"
    SOURCE = "source"  # brings inputs in: build context, base image, remote file
    INTERNAL = "internal"  # BuildKit/buildx bookkeeping: definition, exporter
    FAILED = "failed"
    CANCELED = "canceled"  # stopped because another step failed, or Ctrl-C
    SKIPPED = "skipped"  # announced, never started: not needed or never reached
    RUNNING = "running"  # started, never completed: the stream ended mid-step


#: Statuses of Dockerfile steps whose cache BuildKit consulted.
CACHEABLE = (Status.CACHED, Status.REBUILT)

_SOURCE_PREFIXES = ("[internal] load build context", "[internal] load metadata for")


@dataclass
class Step:
    """One vertex of the build, as cachewhy understands it."""

    digest: str
    name: str
    status: Status
    inputs: list[str]
    keyword: str | None = None  # FROM, RUN, COPY, ADD, WORKDIR for Dockerfile steps
    stage: str | None = None
    index: int | None = None  # i of "[stage i/M]"
    total: int | None = None
    line: int | None = None  # 1-based first Dockerfile line
    end_line: int | None = None
    instruction: str | None = None  # as written in the Dockerfile when known
    started: float | None = None  # POSIX seconds
    completed: float | None = None
    duration_s: float | None = None
    cached: bool = False
    error: str | None = None
    log_tail: str | None = None  # last lines of output, for failed steps
    platform: str | None = None
    unfinished: bool = False  # started and not done when the events ended
    # further places of the same vertex: (line, end_line, stage, instruction),
    # e.g. a base image that two stages start from
    other_locations: list[tuple[int, int, str | None, str]] = field(default_factory=list)

    @property
    def is_step(self) -> bool:
        """A Dockerfile instruction that BuildKit could take from the cache."""
        return self.keyword is not None and self.keyword != "FROM" and self.status is not Status.SOURCE

    @property
    def label(self) -> str:
        return self.instruction or self.name


def find_cycle(dag: "nx.DiGraph") -> list[tuple[str, str]] | None:
    """The edges of one cycle of the graph, None when it is a DAG (as every
    BuildKit build graph is: the acyclicity check is the cheap part)."""
    import networkx as nx  # noqa: PLC0415

    if nx.is_directed_acyclic_graph(dag):
        return None
    return nx.find_cycle(dag)


def inputs_dag(vertices: Iterable[tuple[str, Iterable[str]]]) -> "nx.DiGraph":
    """The DAG of (digest, inputs) pairs: an edge from each input to the vertex that
    reads it. Inputs never seen as vertices and a vertex's own digest are left out;
    a vertex's edges come in the order of its inputs, each at its last place (the
    order nearest_steps walks them in)."""
    import networkx as nx  # noqa: PLC0415 - heavy; `cachewhy build` imports it while buildx runs

    pairs = [(d, list(inputs)) for d, inputs in vertices]
    known = {d for d, _ in pairs}
    dag = nx.DiGraph()  # built in bulk, without per-node attributes
    dag.add_nodes_from(d for d, _ in pairs)
    dag.add_edges_from((i, d) for d, inputs in pairs
                       for i in reversed(dict.fromkeys(reversed(inputs))) if i in known and i != d)
    return dag


def nearest_steps(dag: "nx.DiGraph", digest: str, is_step: Callable[[str], bool]) -> list[str]:
    """The first step met on each input edge of a vertex, looking through the
    vertices that are no steps (sources, internal ones): the steps a rebuilt
    vertex follows from. In the order found, depth first from its last input."""
    out: list[str] = []
    seen: set[str] = set()
    todo = list(dag.predecessors(digest))
    while todo:
        d = todo.pop()
        if d in seen:
            continue
        seen.add(d)
        if is_step(d):
            out.append(d)
        else:
            todo.extend(dag.predecessors(d))
    return out


@dataclass
class BuildGraph:
    """The DAG and the steps in a stable, Dockerfile-first order."""

    dag: "nx.DiGraph"  # vertex digests; what is known of each is in `steps`
    steps: dict[str, Step]
    missing_inputs: set[str] = field(default_factory=set)  # named by inputs, never announced
    bad_times: int = 0  # timestamps given but impossible (unreadable, year 9999…): not used
    long_lines: int = 0  # log lines over the length cap, dropped by events.Lines

    def ordered(self) -> list[Step]:
        """Steps in Dockerfile order; vertices without a line after, by start."""
        def key(s: Step) -> tuple:
            return (
                s.line is None,
                s.line or 0,
                0 if s.keyword == "FROM" else 1,
                s.started if s.started is not None else float("inf"),
                s.name,
            )
        return sorted(self.steps.values(), key=key)

    def nearest_steps(self, digest: str) -> set[str]:
        """The first Dockerfile step (not FROM) met on each input edge of a vertex,
        looking through sources and internal vertices."""
        return set(nearest_steps(self.dag, digest, lambda d: self.steps[d].is_step))

    def summary(self) -> "Summary":
        cached = rebuilt = failed = 0
        rebuilt_time = 0.0
        for s in self.steps.values():
            if not s.is_step:
                continue
            if s.status is Status.CACHED:
                cached += 1
            elif s.status is Status.REBUILT:
                rebuilt += 1
                rebuilt_time += s.duration_s or 0.0
            elif s.status is Status.FAILED:
                failed += 1
        starts = [s.started for s in self.steps.values() if s.started is not None]
        ends = [s.completed for s in self.steps.values() if s.completed is not None]
        wall = (max(ends) - min(starts)) if starts and ends else None
        return Summary(cached, rebuilt, failed, rebuilt_time, wall)


@dataclass(frozen=True)
class Summary:
    cached: int
    rebuilt: int
    failed: int
    rebuilt_time_s: float
    wall_s: float | None

    @property
    def hit_ratio(self) -> float | None:
        total = self.cached + self.rebuilt
        return self.cached / total if total else None


def unfinished(v: Vertex) -> bool:
    """Started and not done: never completed, or restarted after its last
    completion (BuildKit restarts a vertex without clearing `completed`)."""
    return _unfinished(v, parse_time(v.started), parse_time(v.completed))


def _unfinished(v: Vertex, started: float | None, completed: float | None) -> bool:
    """unfinished(v), given its parsed `started` and `completed`."""
    if not v.started or v.error:
        return False
    if not v.completed:
        return True
    return started is not None and completed is not None and completed < started


def vertex_status(v: Vertex, running: bool | None = None) -> Status:
    """Status of a Dockerfile step vertex from its folded updates
    (`running`: unfinished(v), when the caller knows it already)."""
    if v.error:
        return Status.CANCELED if v.error.rstrip().endswith("context canceled") else Status.FAILED
    if v.cached:
        return Status.CACHED
    if unfinished(v) if running is None else running:
        return Status.RUNNING
    if v.completed:
        return Status.REBUILT
    return Status.SKIPPED


def _other_status(v: Vertex) -> Status:
    """Status of a vertex that is not a cacheable Dockerfile step."""
    if v.error:
        return Status.CANCELED if v.error.rstrip().endswith("context canceled") else Status.FAILED
    if v.name.startswith(_SOURCE_PREFIXES):
        return Status.SOURCE
    return Status.INTERNAL


@paused
def build_graph(
    events: BuildEvents,
    dockerfile: dfmod.Dockerfile | None = None,
    locations: dict[str, list[tuple[int, int]]] | None = None,
) -> BuildGraph:
    """Turn folded events into the build graph.

    `locations` maps vertex digests to Dockerfile line ranges (from
    provenance); without it, lines come from matching vertex names against
    the parsed Dockerfile.
    """
    steps: dict[str, Step] = {}
    bad_times = 0
    for v in events.vertices.values():
        step = steps[v.digest] = _make_step(v, events, dockerfile, locations)
        bad_times += (bool(v.started) and step.started is None) + (bool(v.completed) and step.completed is None)
    if dockerfile is not None and not locations:
        _add_shared_froms(steps, dockerfile)
    missing = {inp for step in steps.values() for inp in step.inputs if inp not in steps}
    dag = inputs_dag((digest, step.inputs) for digest, step in steps.items())
    return BuildGraph(dag, steps, missing, bad_times=bad_times, long_lines=events.long_lines)


def _add_shared_froms(steps: dict[str, Step], dockerfile: dfmod.Dockerfile) -> None:
    """BuildKit merges identical base images into one vertex named after one
    stage; give it the FROM lines of the other built stages that share it."""
    built = {s.stage for s in steps.values() if s.stage}
    for step in steps.values():
        if step.keyword != "FROM" or step.stage is None or step.line is None:
            continue
        stage = dockerfile.stage_by_name(step.stage)
        if stage is None:
            continue
        for other in dockerfile.shared_from(stage):
            if other.index != stage.index and other.name in built:
                ins = other.instructions[0]
                step.other_locations.append((ins.line, ins.end_line, other.name, ins.text))


def _make_step(
    v: Vertex,
    events: BuildEvents,
    dockerfile: dfmod.Dockerfile | None,
    locations: dict[str, list[tuple[int, int]]] | None,
) -> Step:
    vname = dfmod.parse_vertex_name(v.name)
    # each timestamp parsed once: the same values as parse_time() and v.duration_s()
    a, b = possible_ns(_parse_ns(v.started)), possible_ns(_parse_ns(v.completed))  # year 9999: not a time
    started = None if a is None else a / 1e9
    completed = None if b is None else b / 1e9
    duration = None if a is None or b is None or b < a else (b - a) / 1e9
    running = _unfinished(v, started, completed)
    step = Step(
        digest=v.digest, name=v.name, status=Status.INTERNAL, inputs=list(v.inputs),
        started=started, completed=completed, duration_s=duration,
        cached=bool(v.cached), error=v.error, unfinished=running,
    )
    if vname is None:
        step.status = _other_status(v)
    else:
        step.keyword = vname.keyword
        step.stage = vname.stage
        step.index = vname.index
        step.total = vname.total
        step.platform = vname.platform
        step.instruction = vname.text
        step.status = Status.SOURCE if vname.keyword == "FROM" else vertex_status(v, running)
        if vname.keyword == "ADD" and not v.inputs and not v.error:
            # `ADD <url>` / `ADD <git>`: the download is a source vertex of its own,
            # named like the step, never `cached`; the step is the copy that reads it
            step.status = Status.SOURCE
        if vname.keyword == "FROM" and v.error:
            step.status = _other_status(v)
        ins = dfmod.locate(dockerfile, vname) if dockerfile is not None else None
        if ins is not None and dockerfile is not None:
            step.line, step.end_line = ins.line, ins.end_line
            step.instruction = ins.text
            if step.stage is None and ins.stage is not None:
                step.stage = dockerfile.stages[ins.stage].name
    if locations and v.digest in locations:
        (step.line, step.end_line), *others = _instruction_ranges(locations[v.digest], dockerfile)
        if dockerfile is not None:
            ins = dockerfile.instruction_at(step.line)
            if ins is not None:
                step.instruction = ins.text
                if ins.stage is not None:
                    step.stage = dockerfile.stages[ins.stage].name
        for start, end in others:
            ins = dockerfile.instruction_at(start) if dockerfile is not None else None
            stage = (dockerfile.stages[ins.stage].name
                     if dockerfile is not None and ins is not None and ins.stage is not None else None)
            step.other_locations.append((start, end, stage, ins.text if ins is not None else step.name))
    if vname is not None and vname.is_link_merge and step.status in (Status.CACHED, Status.REBUILT):
        # `COPY --link` makes two vertices: the copy onto an empty layer (the step,
        # whose cache survives a changed base) and `LINK COPY`, which merges that
        # layer onto the base: bookkeeping, not a second step of that line
        step.status = Status.INTERNAL
        step.keyword = step.line = step.end_line = step.index = None
        step.other_locations = []
    if step.status in (Status.FAILED, Status.CANCELED) or step.status is Status.RUNNING:
        log = events.logs.get(v.digest)
        if log is not None:
            step.log_tail = "\n".join(log.text().rstrip("\n").splitlines()[-20:])
    return step


def _instruction_ranges(ranges: list[tuple[int, int]],
                        dockerfile: dfmod.Dockerfile | None) -> list[tuple[int, int]]:
    """A vertex's provenance ranges, one per instruction. BuildKit gives each
    physical line of a multi-line instruction (continuation lines, heredoc
    bodies) a range of its own; they are one step, from its first line to its
    last. Without the Dockerfile the ranges stay as they are: two FROM lines
    of one image are two ranges that may well be neighbours."""
    if dockerfile is None:
        return ranges
    out: list[tuple[int, int]] = []
    for start, end in ranges:
        ins = dockerfile.instruction_at(start)
        got = (ins.line, ins.end_line) if ins is not None else (start, end)
        if got not in out:
            out.append(got)
    return out


def stage_names(steps: Iterable[Step]) -> list[str]:
    seen: list[str] = []
    for s in steps:
        if s.stage and s.stage not in seen:
            seen.append(s.stage)
    return seen
