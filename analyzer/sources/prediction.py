"""A build that has not run, as a source: `cachewhy predict` and `build --predict`.

It reads what the build these buildx arguments describe would start from now
(predict.gather: the Dockerfile, the context, the base images' digests, the
builder's cache records) and chooses the build it is compared with: `--against`,
else the last build of the same project in the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, cast

from analyzer.sources import Baseline, PredictionInput

if TYPE_CHECKING:
    from analyzer.buildx import BuildArgs
    from analyzer.model import Record


def from_args(args: "BuildArgs", *, store_dir: str | None, against: str | None,
              previous: "Record | None" = None, use_store: bool = True) -> tuple[PredictionInput, Baseline]:
    """The prediction's input and its baseline: `against` (a wrong one is the user's
    error, said before anything), else the store's last build of the same project,
    else `previous` as given."""
    from analyzer.errors import CachewhyError  # noqa: PLC0415
    from analyzer.predict import gather  # noqa: PLC0415
    from analyzer.record import make_hasher, project_of, store_key  # noqa: PLC0415
    from analyzer.store import open_store  # noqa: PLC0415

    store = open_store(store_dir)
    notes: list[str] = []
    ref = None
    other_target = False
    if use_store and previous is None:
        project = project_of(args, args.dockerfile_path())
        try:
            ref = against or store.find_previous(project)
            if ref is None and not against:  # the stages both targets build are one cache
                ref = store.other_target(project)
                other_target = ref is not None
            if against:
                store.resolve(against)
        except CachewhyError as exc:
            if against:
                raise
            notes.append(f"no previous record: {exc}")
    given = previous

    def load_previous() -> dict | None:
        """The previous record, read while the engine is asked."""
        if ref is None:
            return cast("dict | None", given)
        try:
            return cast(dict, store.load(ref))
        except CachewhyError as exc:
            if against:
                raise
            notes.append(f"no previous record: {exc}")
            return None

    now, before = gather(args, load_previous)
    now.notes[:0] = notes  # the forecast says them first, with what reading the build found
    inp = PredictionInput(label="this prediction", now=now, hasher=make_hasher(store_key(store.root)))
    if ref is not None and not other_target and before is not None and now.usage is not None:
        inp.older = _older(store, project, ref)
    if other_target and before is not None:
        inp.other_target = True
        target = (before.get("project") or {}).get("target") or "the last stage"
        now.notes.append(f"no earlier build of this target: the cache statuses come from build {before.get('id')} "
                         f"(target {target})")
    return inp, Baseline(record=cast("Record | None", before))


#: how many builds before the last one a prediction looks into for cache hits
OLDER = 3


def _older(store: "Any", project: "Any", ref: str) -> Iterator[dict]:
    """The project's builds before `ref`, newest first (OLDER of them at most), each
    read only when asked for: most predictions have no step to look up in them."""
    from analyzer.errors import CachewhyError  # noqa: PLC0415

    before = ref
    for _ in range(OLDER):
        try:
            older = store.find_previous(project, before_id=before)
            if older is None:
                return
            record = cast(dict, store.load(older))
        except CachewhyError:
            return
        yield record
        before = older
