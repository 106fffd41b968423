"""``kaido eval``: drive a route set and write one results file.

``kaido eval --routes FILE [--route-id ID ...] --backend embedded|carla --out DIR`` drives a
leaderboard route file; ``kaido eval --generated N [--seed S] --out DIR`` drives N generated
scenarios instead (seeds ``S .. S+N-1``, each the town and random route ``kaido drive --seed``
makes, so no map file is needed); ``kaido eval --replay-set FILE --out DIR`` replays recorded
logs closed loop instead, one entry of the replay set (a small YAML file, format in
:mod:`kaido.simulation.eval_replay`) per route, each with
:func:`~kaido.simulation.replay.closed_loop.run_closed_loop`; its record carries the replay
section (progress ratio against the logged ego, largest deviation, source format) under
``meta.replay``. A replay is deterministic given its log: ``--seed`` reaches only the agent. An
entry whose source is missing or cannot be replayed fails alone (``"Failed - Simulation
crashed"``, the file named in ``crash_message``) and the other entries run, also in this
process. Each route of a route file or generated set is one call of :func:`run_route` (a plain
function: one route, one backend, one record); a replay entry is one call of
:func:`run_replay_route`.

With the embedded backend the routes run in parallel worker processes (``--workers N``, default
the core count), one fresh process per route (libsumo holds one simulation per process; see
:mod:`kaido.simulation.eval_pool`). Each route is isolated: an exception, a killed worker or a
worker still running after ``--route-timeout S`` wall-clock seconds marks that route ``"Failed -
Simulation crashed"`` (score 0, the reason in ``crash_message``) and the run goes on; the command
then exits with code 1 and a re-run drives those routes again. ``--workers 0`` (and the CARLA
backend: one server) drives the routes one after another in this process with one backend.

``--ray ADDRESS`` (``local``, ``auto`` or a cluster address) runs each route as a Ray task
instead (one CPU, a fresh worker process, ``--ray-retries N`` retries after a worker death,
default 2; :mod:`kaido.simulation.eval_ray`); the records come back to this process and are
written exactly as with local workers. Ray is imported only then.

It writes

* ``DIR/<route>/results.json`` (plus ``run.mcap``, ``bev.mp4``) for each route, as ``kaido
  drive`` does;
* ``DIR/results.json``: the leaderboard's document over the whole set (global driving score =
  mean of the route scores over all routes of the set, crashed or not yet driven routes
  scoring 0);
* ``DIR/checkpoint.json``: the records so far. Re-running the same command resumes: finished
  routes are skipped, routes whose simulation crashed are driven again.

In this process (``--workers 0``, CARLA), a lost connection or a crashed server marks the route
``"Failed - Simulation crashed"`` (score 0, counted in the global score), the backend's actors are
cleaned up and the run stops with exit code 1, telling the user to re-run the command to resume.
Only the parent process writes the checkpoint and ``results.json``, after each finished route.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from kaido.provenance import provenance, to_jsonable
from kaido.scene.routes import RouteSpec, load_routes
from kaido.scene.vehicle import DEFAULT_VEHICLE, REPO_CONFIGS, load_vehicle_profile
from kaido.simulation.agents import make_agent
from kaido.simulation.backend import Backend, BackendError, Scenario
from kaido.simulation.drive import DriveOptions, build_backend, build_scenario
from kaido.simulation.eval_pool import OutcomeKind, TaskOutcome, default_workers, run_isolated
from kaido.simulation.eval_replay import (
    REPLAY_META_KEY,
    ReplayEntry,
    ReplaySourceError,
    load_replay_set,
    replay_entry,
)
from kaido.simulation.metrics import FAILURE_SIMULATION_CRASH
from kaido.simulation.results import METRIC_VERSION, RouteResult, results_document
from kaido.simulation.runner import EpisodeOptions, run_episode

__all__ = [
    "CHECKPOINT_NAME",
    "EXIT_INTERRUPTED",
    "EvalOptions",
    "EvalSummary",
    "GeneratedRoute",
    "crashed_result",
    "eval_routes",
    "evaluate",
    "make_eval_backend",
    "register",
    "route_scenario",
    "run_replay_route",
    "run_route",
]

CHECKPOINT_NAME = "checkpoint.json"
DEFAULT_RIG = REPO_CONFIGS / "sensors" / "default.yaml"
BackendFactory = Callable[[], Backend]
EXIT_INTERRUPTED = 130
"""Exit code of an interrupted ``kaido eval`` (128 + SIGINT, as a shell reports it)."""


@dataclass(frozen=True)
class EvalOptions:
    """Everything ``kaido eval`` takes."""

    routes: Path | None
    """Leaderboard route file (1.0 or 2.0 format); None with ``generated`` routes or a
    ``replay_set``."""
    out_dir: Path
    backend: str = "embedded"
    route_ids: tuple[str, ...] = ()
    """Routes to drive, in this order; empty: every route of the file."""
    agent: str = "expert"
    agent_options: dict[str, Any] = field(default_factory=dict)
    maps: Path | None = None
    """embedded: folder holding ``<town>.xodr`` for the routes' towns."""
    host: str = "127.0.0.1"
    port: int = 2000
    timeout: float = 10.0
    """[s] CARLA connection and tick timeout."""
    seed: int = 0
    seconds: float | None = None
    """[s] simulated time limit per route (None: the route's own time budget)."""
    sensors: bool = True
    rig: Path = DEFAULT_RIG
    vehicle: Path = DEFAULT_VEHICLE
    traffic_density: float = 15.0
    """[vehicles/lane-km]"""
    dt: float = 0.05
    """[s] simulation step."""
    video: bool = False
    mcap: bool = True
    progress: bool = True
    generated: int = 0
    """Number of generated scenarios to drive instead of a route file (seeds ``seed ..
    seed + generated - 1``, each as ``kaido drive --seed`` makes it); 0: use ``routes``."""
    workers: int = 0
    """Worker processes, one fresh process per route; 0: drive the routes one after another in
    this process with one backend (always so for the CARLA backend). ``kaido eval`` defaults to
    the core count."""
    route_timeout: float | None = None
    """[s] wall-clock limit per route in a worker process (None: no limit)."""
    ray: str | None = None
    """Ray address to run the routes on, each route a Ray task (``"local"``: a Ray instance on
    this machine, ``"auto"``, or a cluster address); None: local worker processes."""
    ray_retries: int = 2
    """Ray: retries of a route whose worker died, before the route is marked failed."""
    replay_set: Path | None = None
    """Replay set YAML (:mod:`kaido.simulation.eval_replay`) to replay instead of driving routes:
    each entry's log closed loop, ``seed`` reaching only the agent."""

    def __post_init__(self) -> None:
        if isinstance(self.generated, bool) or not isinstance(self.generated, int):
            raise TypeError(f"EvalOptions.generated: must be an int, got {self.generated!r}")
        if self.generated < 0:
            raise ValueError(f"EvalOptions.generated: must be >= 0, got {self.generated}")
        given = (self.routes is not None) + (self.generated > 0) + (self.replay_set is not None)
        if given != 1:
            raise ValueError(
                "EvalOptions: give exactly one route set: routes (a route file), generated > 0 "
                f"or replay_set (got routes={self.routes!r}, generated={self.generated}, "
                f"replay_set={self.replay_set!r})"
            )
        if self.replay_set is not None and self.backend != "embedded":
            raise ValueError(
                f"EvalOptions: a replay set replays logs; it takes no backend ({self.backend!r})"
            )
        if self.generated and self.route_ids:
            raise ValueError("EvalOptions.route_ids: only for a route file, not generated routes")
        if self.generated and self.backend != "embedded":
            raise ValueError(
                f"EvalOptions: generated routes need the embedded backend, not {self.backend!r}"
            )
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            raise ValueError(f"EvalOptions.workers: must be an int >= 0, got {self.workers!r}")
        if self.route_timeout is not None and not self.route_timeout > 0:
            raise ValueError(
                f"EvalOptions.route_timeout: must be > 0 s or None, got {self.route_timeout!r}"
            )
        if self.ray is not None and (not isinstance(self.ray, str) or not self.ray.strip()):
            raise ValueError(f"EvalOptions.ray: must be a Ray address or None, got {self.ray!r}")
        if self.ray is not None and self.backend != "embedded":
            raise ValueError(f"EvalOptions.ray: needs the embedded backend, not {self.backend!r}")
        if (
            isinstance(self.ray_retries, bool)
            or not isinstance(self.ray_retries, int)
            or self.ray_retries < 0
        ):
            raise ValueError(
                f"EvalOptions.ray_retries: must be an int >= 0, got {self.ray_retries!r}"
            )


@dataclass(frozen=True)
class GeneratedRoute:
    """One generated scenario: the town and random route ``kaido drive --seed SEED`` makes."""

    seed: int

    @property
    def route_id(self) -> str:
        return f"seed{self.seed}"

    @property
    def town(self) -> str:
        return "town"


EvalRoute = RouteSpec | GeneratedRoute | ReplayEntry


@dataclass(frozen=True)
class EvalSummary:
    """What one ``kaido eval`` run did."""

    results_path: Path
    records: tuple[RouteResult, ...]
    """Records of the routes driven so far, in route-set order."""
    total_routes: int
    driven: int
    """Routes driven by this run (the others were resumed from the checkpoint)."""
    crashed: str | None
    """Why a route of this run crashed (the first such route; in this process the run stopped
    there, in worker processes the others went on), or None."""
    driving_score: float
    """[%] global driving score over all routes of the set."""


def _route_dir(spec: EvalRoute) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in spec.route_id)
    return f"route_{safe}"


def _map_path(spec: RouteSpec, options: EvalOptions) -> Path:
    if options.backend == "carla":
        return Path(f"{spec.town}.xodr")  # CARLA loads the town by name
    if options.maps is None:
        raise ValueError("the embedded backend needs --maps DIR holding <town>.xodr files")
    town = spec.town.removesuffix("_Opt")
    for name in (spec.town, town, town.lower(), town.capitalize()):
        path = Path(options.maps) / f"{name}.xodr"
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"{options.maps}: no OpenDRIVE file {town}.xodr for route {spec.route_id}"
    )


def route_scenario(spec: EvalRoute, options: EvalOptions) -> Scenario:
    """The scenario of one route (a generated route writes its town into its route folder)."""
    if isinstance(spec, ReplayEntry):
        raise TypeError(f"route_scenario: replay entry {spec.route_id!r} replays its log instead")
    if isinstance(spec, GeneratedRoute):
        folder = Path(options.out_dir) / _route_dir(spec)
        folder.mkdir(parents=True, exist_ok=True)
        return build_scenario(
            DriveOptions(
                out_dir=folder,
                seed=spec.seed,
                traffic_density=options.traffic_density,
                dt=options.dt,
            )
        )
    return Scenario(
        name=f"{spec.town}-route{spec.route_id}-seed{options.seed}",
        map_path=_map_path(spec, options),
        route_waypoints=np.asarray(spec.waypoints),
        route_yaws=None if spec.yaws is None else np.asarray(spec.yaws),
        route_id=spec.route_id,
        traffic_density=options.traffic_density,
        seed=options.seed,
        dt=options.dt,
    )


def crashed_result(spec: EvalRoute, index: int, message: str) -> RouteResult:
    """The record of a route whose simulation crashed: a failure with score 0."""
    return RouteResult(
        route_id=spec.route_id,
        status=f"Failed - {FAILURE_SIMULATION_CRASH}",
        driving_score=0.0,
        route_completion=0.0,
        infraction_penalty=1.0,
        infractions=(),
        duration_game_s=0.0,
        route_length_m=0.0,
        distance_driven_m=0.0,
        town_name=spec.town,
        crash_message=message
        if message.lower().startswith("simulation")
        else f"simulation crashed: {message}",
        index=index,
        metric_config={"metric_version": METRIC_VERSION},
    )


def run_route(backend: Backend, spec: EvalRoute, index: int, options: EvalOptions) -> RouteResult:
    """Drive one route on ``backend`` and return its record.

    A simulation crash (``BackendError``, or the CARLA client's ``RuntimeError``) becomes a
    crashed record (:func:`crashed_result`); the per-route files go to
    ``options.out_dir / route_<id>``.
    """
    scenario = route_scenario(spec, options)
    vehicle = load_vehicle_profile(options.vehicle)
    agent_options = dict(options.agent_options)
    if options.agent == "learned":
        agent_options.setdefault("rig", options.rig)
    agent = make_agent(options.agent, **agent_options)
    try:
        episode = run_episode(
            backend,
            agent,
            scenario,
            EpisodeOptions(
                out_dir=options.out_dir / _route_dir(spec),
                record_mcap=options.mcap,
                record_video=options.video,
                max_seconds=options.seconds,
                progress=options.progress,
            ),
            road_map_of=lambda b: b.road_map,  # type: ignore[attr-defined]
            vehicle=vehicle,
            config=options,
        )
    except (BackendError, RuntimeError) as err:
        return crashed_result(spec, index, str(err).splitlines()[0] if str(err) else repr(err))
    return replace(episode.result, index=index, route_id=spec.route_id)


def run_replay_route(
    entry: ReplayEntry, index: int, options: EvalOptions
) -> tuple[RouteResult, dict[str, Any] | None]:
    """Replay one replay set entry closed loop into ``options.out_dir / route_<id>``: its record
    and its replay section (None when the source was missing or could not be replayed: then the
    record is a crashed one whose message names the file)."""
    agent_options = dict(options.agent_options)
    if options.agent == "learned":
        agent_options.setdefault("rig", options.rig)
    try:
        return replay_entry(
            entry,
            index,
            options.out_dir / _route_dir(entry),
            agent=options.agent,
            agent_options=agent_options,
            record_video=options.video,
            record_mcap=options.mcap,
            progress=options.progress,
        )
    except ReplaySourceError as err:
        return crashed_result(entry, index, str(err)), None


def make_eval_backend(options: EvalOptions) -> Backend:
    """The backend ``options`` name (CARLA: connected and version-checked)."""
    return build_backend(
        options.backend,
        rig=Path(options.rig) if options.sensors else None,
        vehicle=Path(options.vehicle),
        host=options.host,
        port=options.port,
        timeout=options.timeout,
    )


def eval_routes(options: EvalOptions) -> list[EvalRoute]:
    """The routes of ``options``' route set, in driving order (``route_ids`` order if given)."""
    if options.generated:
        return [GeneratedRoute(options.seed + i) for i in range(options.generated)]
    if options.replay_set is not None:
        entries = {e.route_id: e for e in load_replay_set(options.replay_set).entries}
        unknown = [rid for rid in options.route_ids if rid not in entries]
        if unknown:
            raise ValueError(
                f"{options.replay_set}: no entries with id {unknown}; ids: {list(entries)}"
            )
        return [entries[rid] for rid in options.route_ids] or list(entries.values())
    assert options.routes is not None  # EvalOptions checks that one route set is given
    specs = load_routes(options.routes, route_ids=list(options.route_ids) or None)
    if options.route_ids:
        order = {rid: i for i, rid in enumerate(options.route_ids)}
        specs = sorted(specs, key=lambda s: order[s.route_id])
    return list(specs)


def _route_set_name(options: EvalOptions) -> str:
    """What the checkpoint records as the route set (a resolved file path or the seeds)."""
    if options.generated:
        return f"generated: seeds {options.seed}..{options.seed + options.generated - 1}"
    if options.replay_set is not None:
        return f"replay set: {Path(options.replay_set).resolve()}"
    assert options.routes is not None
    return str(Path(options.routes).resolve())


def _replay_section(record: Any) -> dict[str, Any] | None:
    """The replay section of a route record's JSON (``meta.replay``), or None."""
    meta = record.get("meta") if isinstance(record, dict) else None
    section = meta.get(REPLAY_META_KEY) if isinstance(meta, dict) else None
    return dict(section) if isinstance(section, dict) else None


def _read_checkpoint(
    path: Path, route_set: str, ids: list[str]
) -> tuple[dict[str, RouteResult], dict[str, dict[str, Any]]]:
    """The checkpoint's records and the replay sections among them, by route id."""
    if not path.is_file():
        return {}, {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        saved_ids = [str(i) for i in data["route_ids"]]
        saved_routes = str(data["routes"])
        records = {str(k): RouteResult.from_json(v) for k, v in data["records"].items()}
        sections = {str(k): _replay_section(v) for k, v in data["records"].items()}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: unreadable checkpoint ({err}); delete it to start over") from err
    if saved_ids != ids or saved_routes != route_set:
        raise ValueError(
            f"{path}: the checkpoint is for other routes ({saved_routes}, {len(saved_ids)} "
            "routes); use another --out or delete it to start over"
        )
    return records, {k: v for k, v in sections.items() if v is not None}


def _write_json(path: Path, document: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _drive_in_worker(
    spec: EvalRoute, index: int, options: EvalOptions, backend_factory: BackendFactory | None
) -> dict[str, Any]:
    """Worker process body: one route on its own backend (a replay entry: its replay), its
    record as JSON data (a replay's with its replay section in ``meta``)."""
    if isinstance(spec, ReplayEntry):
        record, section = run_replay_route(spec, index, options)
        data = record.to_json()
        if section is not None:
            data["meta"][REPLAY_META_KEY] = section
        return data
    backend = (backend_factory or (lambda: make_eval_backend(options)))()
    try:
        return run_route(backend, spec, index, options).to_json()
    finally:
        backend.close()


def _outcome_record(outcome: TaskOutcome, spec: EvalRoute, index: int) -> RouteResult:
    """The record of a route from its worker's outcome (a crashed record unless it finished)."""
    if outcome.kind is OutcomeKind.OK:
        return RouteResult.from_json(outcome.value)
    reason = {
        OutcomeKind.RAISED: "the route raised",
        OutcomeKind.DIED: "the worker died",
        OutcomeKind.TIMED_OUT: "the route hung",
    }[outcome.kind]
    return crashed_result(spec, index, f"simulation crashed ({reason}): {outcome.error}")


def evaluate(options: EvalOptions, backend_factory: BackendFactory | None = None) -> EvalSummary:
    """Drive the route set of ``options`` (resuming from ``out_dir/checkpoint.json``).

    ``options.workers >= 1`` (embedded backend): each route in a fresh worker process
    (``backend_factory``, when given, is called in the worker); otherwise in this process with
    one backend.
    """
    specs = eval_routes(options)
    ids = [s.route_id for s in specs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{options.routes}: route ids repeat in the selection: {ids}")
    out = Path(options.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / CHECKPOINT_NAME
    route_set = _route_set_name(options)
    records, replay_sections = _read_checkpoint(checkpoint, route_set, ids)
    todo = [
        (i, s)
        for i, s in enumerate(specs)
        if s.route_id not in records or "Simulation crashed" in records[s.route_id].status
    ]
    run_provenance = provenance(options)
    crashed: str | None = None
    driven = 0

    def record_json(rid: str, index: int | None = None) -> dict[str, Any]:
        data = records[rid].to_json(index)
        if rid in replay_sections:
            data["meta"][REPLAY_META_KEY] = replay_sections[rid]
        return data

    def save() -> Path:
        ordered = [records[i] for i in ids if i in records]
        _write_json(
            checkpoint,
            {
                "routes": route_set,
                "route_ids": ids,
                "records": {rid: record_json(rid) for rid in ids if rid in records},
                "progress": [len(ordered), len(ids)],
                "updated_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        )
        document = results_document(
            ordered,
            provenance=run_provenance,
            config={"eval": to_jsonable(options)},
            total_routes=len(ids),
        )
        document["_checkpoint"]["records"] = [
            record_json(r.route_id, i) for i, r in enumerate(ordered)
        ]
        results_path = out / "results.json"
        _write_json(results_path, document)
        return results_path

    results_path = save()
    in_process = options.ray is None and (options.workers == 0 or options.backend == "carla")
    if todo and in_process:
        replaying = options.replay_set is not None  # no shared backend: a crash stops nothing
        backend = None if replaying else (backend_factory or (lambda: make_eval_backend(options)))()
        try:
            for index, spec in todo:
                if options.progress:
                    print(f"route {spec.route_id} ({index + 1}/{len(ids)})", file=sys.stderr)
                if isinstance(spec, ReplayEntry):
                    record, section = run_replay_route(spec, index, options)
                    replay_sections.pop(spec.route_id, None)
                    if section is not None:
                        replay_sections[spec.route_id] = section
                else:
                    assert backend is not None
                    record = run_route(backend, spec, index, options)
                records[spec.route_id] = record
                driven += 1
                results_path = save()
                if "Simulation crashed" in record.status and crashed is None:
                    crashed = record.crash_message or record.status
                    if not replaying:
                        break
        finally:
            if backend is not None:
                backend.close()
    elif todo:
        by_id = {spec.route_id: (index, spec) for index, spec in todo}

        def finished(outcome: TaskOutcome) -> None:
            nonlocal driven, crashed, results_path
            index, spec = by_id[outcome.key]
            record = _outcome_record(outcome, spec, index)
            records[spec.route_id] = record
            section = _replay_section(outcome.value) if outcome.ok else None
            replay_sections.pop(spec.route_id, None)
            if section is not None:
                replay_sections[spec.route_id] = section
            driven += 1
            results_path = save()
            if "Simulation crashed" in record.status and crashed is None:
                crashed = f"route {spec.route_id}: {record.crash_message or record.status}"
            if options.progress:
                print(
                    f"route {spec.route_id} ({index + 1}/{len(ids)}) done: {record.status}, "
                    f"DS {record.driving_score:.2f} ({outcome.wall_s:.1f} s)",
                    file=sys.stderr,
                )

        tasks = [
            (
                spec.route_id,
                functools.partial(_drive_in_worker, spec, index, options, backend_factory),
            )
            for index, spec in todo
        ]
        if options.ray is not None:
            from kaido.simulation.eval_ray import run_on_ray  # imports Ray: only with --ray

            run_on_ray(
                tasks,
                address=options.ray,
                retries=options.ray_retries,
                on_outcome=finished,
                timeout_s=options.route_timeout,
            )
        else:
            run_isolated(
                tasks,
                workers=options.workers,
                on_outcome=finished,
                timeout_s=options.route_timeout,
            )
    ordered = tuple(records[i] for i in ids if i in records)
    score = sum(r.driving_score for r in ordered) / len(ids) if ids else 0.0
    return EvalSummary(
        results_path=results_path,
        records=ordered,
        total_routes=len(ids),
        driven=driven,
        crashed=crashed,
        driving_score=score,
    )


def _cmd_eval(args: argparse.Namespace) -> int:
    given = [args.routes, args.generated, args.replay_set]
    if sum(value is not None for value in given) != 1:
        raise ValueError("give one route set: --routes FILE, --generated N or --replay-set FILE")
    if args.generated is not None and args.generated < 1:
        raise ValueError(f"--generated: must be >= 1, got {args.generated}")
    workers = default_workers() if args.workers is None else args.workers
    if workers < 0:
        raise ValueError(f"--workers: must be >= 0, got {workers}")
    agents = list(dict.fromkeys(args.agent or ["expert"]))
    seeds = list(dict.fromkeys(args.seed if args.seed is not None else [0]))
    options = EvalOptions(
        routes=Path(args.routes) if args.routes is not None else None,
        generated=args.generated or 0,
        replay_set=Path(args.replay_set) if args.replay_set is not None else None,
        workers=workers,
        route_timeout=args.route_timeout,
        ray=args.ray,
        ray_retries=args.ray_retries,
        out_dir=Path(args.out),
        backend=args.backend,
        route_ids=tuple(args.route_id or ()),
        agent=agents[0],
        agent_options={"checkpoint": Path(args.checkpoint)} if args.checkpoint else {},
        maps=Path(args.maps) if args.maps else None,
        host=args.host,
        port=args.port,
        timeout=args.timeout,
        seed=seeds[0],
        seconds=args.seconds,
        sensors=not args.no_sensors,
        traffic_density=args.traffic,
        video=args.video,
        progress=not args.quiet,
    )
    if args.rig:
        options = replace(options, rig=Path(args.rig))
    if options.routes is not None and not options.routes.is_file():
        raise FileNotFoundError(f"{options.routes}: no such route file")
    if options.replay_set is not None:
        load_replay_set(options.replay_set)  # a bad set file is bad input: exit 2 before any run
    if len(agents) > 1 or len(seeds) > 1:
        return _cmd_eval_grid(options, agents, seeds)
    try:
        summary = evaluate(options)
    except KeyboardInterrupt:
        print(
            "kaido eval: interrupted; finished routes are kept in "
            f"{options.out_dir / CHECKPOINT_NAME}; re-run the same command to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    for record in summary.records:
        print(
            f"route {record.route_id:>6}  DS {record.driving_score:6.2f}  "
            f"RC {record.route_completion:6.2f} %  IP {record.infraction_penalty:.3f}  "
            f"{record.status}"
        )
    print(
        f"driving score {summary.driving_score:.2f} over {summary.total_routes} route(s) "
        f"({len(summary.records)} recorded, {summary.driven} driven now); "
        f"results {summary.results_path}"
    )
    if summary.crashed is not None:
        print(
            f"kaido eval: the simulation crashed ({summary.crashed}); re-run the same command "
            "to drive the crashed and remaining routes",
            file=sys.stderr,
        )
        return 1
    return 0


def evaluate_grid(options: EvalOptions, agents: list[str], seeds: list[int]) -> dict[str, Any]:
    """Every agent × seed drives the whole route set of ``options``: each run is exactly the
    single ``kaido eval`` it stands for, in ``OUT/<agent>/seed<S>/`` (so each resumes on its
    own), and ``OUT/summary.json`` tabulates the global driving scores (per run, and per agent
    the mean over its seeds) with provenance."""
    if not agents or not seeds:
        raise ValueError("evaluate_grid: give at least one agent and one seed")
    runs = []
    for agent in agents:
        for seed in seeds:
            run = replace(
                options, agent=agent, seed=seed, out_dir=options.out_dir / agent / f"seed{seed}"
            )
            summary = evaluate(run)
            runs.append(
                {
                    "agent": agent,
                    "seed": seed,
                    "driving_score": summary.driving_score,
                    "routes": summary.total_routes,
                    "recorded": len(summary.records),
                    "crashed": summary.crashed,
                    "results": str(summary.results_path),
                }
            )
    per_agent = {
        agent: float(np.mean([r["driving_score"] for r in runs if r["agent"] == agent]))
        for agent in agents
    }
    document = {
        "runs": runs,
        "mean_driving_score": per_agent,
        "provenance": provenance(
            {"options": to_jsonable(options), "agents": agents, "seeds": seeds}
        ),
    }
    options.out_dir.mkdir(parents=True, exist_ok=True)
    (options.out_dir / "summary.json").write_text(json.dumps(document, indent=2) + "\n")
    return document


def _cmd_eval_grid(options: EvalOptions, agents: list[str], seeds: list[int]) -> int:
    try:
        document = evaluate_grid(options, agents, seeds)
    except KeyboardInterrupt:
        print(
            "kaido eval: interrupted; finished routes are kept per run; re-run the same command "
            "to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    for run in document["runs"]:
        print(f"{run['agent']:<10} seed {run['seed']:>4}  DS {run['driving_score']:6.2f}")
    for agent, score in document["mean_driving_score"].items():
        print(f"{agent:<10} mean DS {score:6.2f} over {len(seeds)} seed(s)")
    print(f"summary {options.out_dir / 'summary.json'}")
    return 1 if any(run["crashed"] for run in document["runs"]) else 0


def register(sub: Any) -> None:
    """Add ``kaido eval`` to the command line's subparsers."""
    parser = sub.add_parser("eval", help="drive a route set in parallel, write one results file")
    parser.add_argument("--routes", help="leaderboard route file (1.0 or 2.0)")
    parser.add_argument(
        "--generated",
        type=int,
        metavar="N",
        help="instead of --routes: N generated towns/routes, seeds --seed .. --seed+N-1",
    )
    parser.add_argument(
        "--replay-set",
        metavar="FILE",
        help="instead of --routes: a replay set YAML (name, entries of {source, id, reactive}); "
        "each log is replayed closed loop as one route; --seed reaches only the agent",
    )
    parser.add_argument(
        "--workers",
        type=int,
        help="worker processes, one fresh process per route (default: the core count; "
        "0: all routes in this process)",
    )
    parser.add_argument(
        "--route-timeout",
        type=float,
        metavar="S",
        help="wall-clock limit per route in a worker [s]; past it the route is marked failed",
    )
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run each route as a Ray task: 'local' (a Ray instance on this machine), 'auto' "
        "or a cluster address; --workers is then unused",
    )
    parser.add_argument(
        "--ray-retries",
        type=int,
        default=2,
        metavar="N",
        help="with --ray: retries of a route whose worker died (default 2)",
    )
    parser.add_argument(
        "--route-id", action="append", help="route to drive (repeatable; default: all)"
    )
    parser.add_argument("--backend", choices=("embedded", "carla"), default="embedded")
    parser.add_argument(
        "--agent",
        action="append",
        help="driving agent: expert (default), learned, baseline; repeatable: every agent "
        "drives the whole set, into OUT/<agent>/seed<S>/",
    )
    parser.add_argument("--checkpoint", help="learned agent: model checkpoint")
    parser.add_argument("--maps", help="embedded: folder with <town>.xodr for the routes' towns")
    parser.add_argument("--host", default="127.0.0.1", help="carla: server host")
    parser.add_argument("--port", type=int, default=2000, help="carla: server port")
    parser.add_argument("--timeout", type=float, default=10.0, help="carla: timeout [s]")
    parser.add_argument(
        "--seed",
        type=int,
        action="append",
        help="traffic seed (default 0); with --generated the first town seed; repeatable: "
        "every seed is one run of the whole set",
    )
    parser.add_argument("--seconds", type=float, help="simulated time limit per route [s]")
    parser.add_argument("--traffic", type=float, default=15.0, help="vehicles per lane-km")
    parser.add_argument("--no-sensors", action="store_true", help="ground truth only")
    parser.add_argument("--rig", help="sensor rig YAML (default: configs/sensors/default.yaml)")
    parser.add_argument("--video", action="store_true", help="write bev.mp4 per route")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument("--out", default="out/eval", help="output folder")
    parser.set_defaults(func=_cmd_eval)
