"""``kaido collect``: drive the privileged expert over many varied episodes to make training logs.

A collection is a plan of episodes (:class:`EpisodePlan`), each derived from the collection's
seed and the episode's index alone, so a plan with more episodes extends a smaller one. An
episode drives the ``expert`` agent with sensors on (the rig of ``CollectConfig.rig``) in the
embedded simulator through :func:`kaido.simulation.drive.drive` (the runner records the MCAP
log; no video), on either

* a procedural town (:mod:`kaido.scene.town_generator`) with a random layout, size, lane count,
  speed limit and seed, written to the episode's folder as ``town.xodr``, or
* an OpenDRIVE map given with ``maps`` (e.g. the CARLA towns), with a random route, or a route
  of that town from the leaderboard route file ``routes`` when it has one,

with a random background-traffic density, pedestrian density and (sometimes) a scripted event.

Layout of ``OUT``::

    OUT/collect.json          the manifest (below), rewritten after every episode
    OUT/<episode>/run.mcap    the log (kaido.logs.mcap_log)
    OUT/<episode>/results.json
    OUT/<episode>/town.xodr   generated towns only
    OUT/<episode>/episode.json the episode's plan
    OUT/<episode>/collect.log the episode's own output (stdout/stderr)

``collect.json``: ``format``, ``config``, ``provenance`` and ``episodes``: one entry per planned
episode with its ``name``, ``status`` (``ok``, ``failed`` or ``pending``), ``plan`` (the
:class:`EpisodePlan` as data: seed, town parameters or map, route, densities, events), the files
(``mcap``, ``results``, ``map_file``; paths relative to ``OUT``), ``error`` for a failed episode
and, for a finished one, the route's ``result_status``, ``driving_score``, ``sim_seconds`` and
``wall_seconds``. An episode whose agent or simulator crashed (the runner's ``crash_message``)
is ``failed`` too: its log is not expert driving. The log itself carries what
``kaido dataset build`` needs: the route
(``/scene/route``), and in its provenance metadata the drive options (the map's path) plus the
``extra`` keys ``collect.map_source``, ``collect.map_file`` and ``collect.town_spec``, from which
a generated town can be rebuilt when its file has moved.

Every episode runs in its own process (``python -m kaido.simulation.collect EPISODE_DIR``,
``workers`` at a time), so a crash (even of SUMO) fails
that episode only. Re-running the same command skips the finished episodes and retries the rest.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from kaido.provenance import provenance, to_jsonable
from kaido.scene.town_generator import TownSpec, write_town
from kaido.simulation.backend import EventKind
from kaido.simulation.drive import DEFAULT_RIG, DriveOptions

__all__ = [
    "COLLECT_FORMAT",
    "MANIFEST_NAME",
    "CollectConfig",
    "CollectSummary",
    "EpisodePlan",
    "collect",
    "drive_options",
    "make_plan",
    "plan_episode",
    "read_manifest",
    "run_planned_episode",
]

COLLECT_FORMAT = "kaido-collect/1"
"""Value of ``format`` in ``collect.json``."""
MANIFEST_NAME = "collect.json"
LOG_NAME = "collect.log"
PLAN_NAME = "episode.json"
EXTRA_MAP_SOURCE = "collect.map_source"
"""DriveOptions.extra key: ``generated`` or ``file``."""
EXTRA_MAP_FILE = "collect.map_file"
"""DriveOptions.extra key: the map file (a name inside the episode folder, or a path)."""
EXTRA_TOWN_SPEC = "collect.town_spec"
"""DriveOptions.extra key: the generated town's :class:`TownSpec` as JSON (``{}`` for a file)."""
EXTRA_EPISODE = "collect.episode"
"""DriveOptions.extra key: the episode's name."""

_SPEED_LIMITS = (8.33, 11.11, 13.89, 16.67)
"""[m/s] speed limits of generated towns (30, 40, 50, 60 km/h)."""


@dataclass(frozen=True)
class CollectConfig:
    """What to collect; every random choice derives from ``seed`` and the episode index."""

    episodes: int = 10
    seconds: float = 60.0
    """[s] simulated time per episode (less if the route ends first)."""
    seed: int = 0
    rig: Path = DEFAULT_RIG
    """Sensor rig YAML."""
    agent: str = "expert"
    maps: tuple[Path, ...] = ()
    """OpenDRIVE maps (e.g. CARLA towns) driven beside generated towns."""
    map_fraction: float = 0.5
    """Share (0..1) of episodes on ``maps`` when there are any."""
    routes: Path | None = None
    """Leaderboard route file; an episode on a map whose town it has drives one of its routes."""
    traffic_densities: tuple[float, ...] = (0.0, 8.0, 15.0, 30.0, 45.0)
    """[vehicles/lane-km] drawn uniformly per episode."""
    pedestrian_densities: tuple[float, ...] = (0.0, 0.0, 10.0, 30.0)
    """[persons/km of sidewalk] drawn uniformly per episode."""
    event_probability: float = 0.5
    """Chance that an episode has one scripted event (see ``EventKind``)."""

    def __post_init__(self) -> None:
        if isinstance(self.episodes, bool) or not isinstance(self.episodes, int):
            raise ValueError(f"collect: episodes must be an integer, got {self.episodes!r}")
        if self.episodes < 1:
            raise ValueError(f"collect: episodes must be >= 1, got {self.episodes}")
        if not (math.isfinite(self.seconds) and self.seconds > 0):
            raise ValueError(f"collect: seconds must be > 0, got {self.seconds}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"collect: seed must be an integer >= 0, got {self.seed!r}")
        for name in ("map_fraction", "event_probability"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"collect: {name} must be in [0, 1], got {value}")
        for name in ("traffic_densities", "pedestrian_densities"):
            values = tuple(getattr(self, name))
            if not values or any(not (math.isfinite(v) and v >= 0) for v in values):
                raise ValueError(f"collect: {name} must be non-empty and >= 0, got {values}")
            object.__setattr__(self, name, tuple(float(v) for v in values))
        maps = tuple(Path(p) for p in self.maps)
        for path in maps:
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no such OpenDRIVE file")
        object.__setattr__(self, "maps", maps)
        if self.routes is not None and not Path(self.routes).is_file():
            raise FileNotFoundError(f"{self.routes}: no such route file")
        if not Path(self.rig).is_file():
            raise FileNotFoundError(f"{self.rig}: no such sensor rig file")


@dataclass(frozen=True)
class EpisodePlan:
    """One planned episode, as plain data (JSON round trip with :meth:`to_dict`)."""

    name: str
    index: int
    seed: int
    """Seeds the route (when random), the traffic and the sensor noise."""
    seconds: float
    traffic_density: float
    """[vehicles/lane-km]"""
    pedestrians: float
    """[persons/km of sidewalk]"""
    events: tuple[str, ...]
    """``KIND@S[:DISTANCE]`` strings (see :func:`kaido.simulation.drive.parse_event`)."""
    town: Mapping[str, Any] | None
    """The generated town's :class:`TownSpec` fields, or None for a map file."""
    map_path: str | None
    """The OpenDRIVE file driven, or None for a generated town."""
    routes: str | None = None
    route_id: str | None = None
    agent: str = "expert"
    rig: str = str(DEFAULT_RIG)

    @property
    def map_name(self) -> str:
        """The town's name: the generated town's ``name`` or the map file's stem."""
        if self.town is not None:
            return str(self.town["name"])
        return Path(str(self.map_path)).stem

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = to_jsonable(self)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EpisodePlan:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"episode plan: unknown keys {unknown}")
        kwargs = dict(data)
        kwargs["events"] = tuple(kwargs.get("events", ()))
        return cls(**kwargs)


def _town_spec(rng: np.random.Generator, index: int) -> TownSpec:
    """A random, valid generated town."""
    layout = "ring" if rng.random() < 0.2 else "grid"
    lanes = int(rng.choice([1, 1, 2]))
    rows = int(rng.integers(3, 5)) if layout == "ring" else int(rng.integers(2, 5))
    cols = int(rng.integers(3 if rows == 2 else 2, 5))
    # long enough blocks for the setbacks of multi-lane roads
    block = float(rng.uniform(70.0, 110.0)) + 15.0 * (lanes - 1)
    return TownSpec(
        layout=layout,  # type: ignore[arg-type]
        rows=rows,
        cols=cols,
        block_length=round(block, 1),
        lanes_per_direction=lanes,
        speed_limit=float(rng.choice(_SPEED_LIMITS)),
        t_junction_fraction=float(rng.choice([0.0, 0.0, 0.3])) if layout == "grid" else 0.0,
        seed=int(rng.integers(0, 2**31 - 1)),
        name=f"town{index:05d}",
    )


def _event(rng: np.random.Generator, seconds: float) -> str:
    kind = list(EventKind)[int(rng.integers(len(EventKind)))]
    # trigger early enough to happen within the episode (the expert starts from rest)
    trigger = float(rng.uniform(0.0, max(5.0, 2.0 * seconds)))
    distance = float(rng.uniform(20.0, 45.0))
    return f"{kind.value}@{trigger:.0f}:{distance:.0f}"


def _route_ids(routes: Path, town: str) -> list[str]:
    from kaido.scene.route_planner import _town_key
    from kaido.scene.routes import load_routes

    return [r.route_id for r in load_routes(routes) if _town_key(r.town) == _town_key(town)]


def plan_episode(config: CollectConfig, index: int) -> EpisodePlan:
    """Episode ``index`` of the collection ``config`` (independent of ``config.episodes``)."""
    rng = np.random.default_rng([config.seed, index])
    seed = int(rng.integers(0, 2**31 - 1))
    traffic = float(rng.choice(config.traffic_densities))
    pedestrians = float(rng.choice(config.pedestrian_densities))
    on_map = bool(config.maps) and rng.random() < config.map_fraction
    events: tuple[str, ...] = ()
    if rng.random() < config.event_probability:
        events = (_event(rng, config.seconds),)
    town: dict[str, Any] | None = None
    map_path: str | None = None
    routes: str | None = None
    route_id: str | None = None
    if on_map:
        path = config.maps[int(rng.integers(len(config.maps)))]
        map_path = str(path.resolve())
        if config.routes is not None:
            ids = _route_ids(config.routes, path.stem)
            if ids:
                routes = str(Path(config.routes).resolve())
                route_id = ids[int(rng.integers(len(ids)))]
    else:
        town = to_jsonable(_town_spec(rng, index))
    return EpisodePlan(
        name=f"ep{index:05d}",
        index=index,
        seed=seed,
        seconds=float(config.seconds),
        traffic_density=traffic,
        pedestrians=pedestrians,
        events=events,
        town=town,
        map_path=map_path,
        routes=routes,
        route_id=route_id,
        agent=config.agent,
        rig=str(Path(config.rig).resolve()),
    )


def make_plan(config: CollectConfig) -> list[EpisodePlan]:
    """The collection's episodes, in index order."""
    return [plan_episode(config, i) for i in range(config.episodes)]


def drive_options(plan: EpisodePlan, episode_dir: Path) -> DriveOptions:
    """The ``kaido drive`` options of one episode (a generated town is at ``town.xodr``)."""
    episode_dir = Path(episode_dir).resolve()
    if plan.town is not None:
        map_path = episode_dir / "town.xodr"
        extra = {
            EXTRA_MAP_SOURCE: "generated",
            EXTRA_MAP_FILE: "town.xodr",
            EXTRA_TOWN_SPEC: json.dumps(dict(plan.town), sort_keys=True),
        }
    else:
        map_path = Path(str(plan.map_path))
        extra = {EXTRA_MAP_SOURCE: "file", EXTRA_MAP_FILE: str(map_path), EXTRA_TOWN_SPEC: "{}"}
    extra[EXTRA_EPISODE] = plan.name
    return DriveOptions(
        out_dir=episode_dir,
        agent=plan.agent,
        map_path=map_path,
        routes=Path(plan.routes) if plan.routes else None,
        route_id=plan.route_id,
        seed=plan.seed,
        seconds=plan.seconds,
        sensors=True,
        rig=Path(plan.rig),
        traffic_density=plan.traffic_density,
        pedestrians=plan.pedestrians,
        events=plan.events,
        progress=False,
        video=False,
        mcap=True,
        extra=extra,
    )


def run_planned_episode(plan: EpisodePlan, episode_dir: Path) -> Path:
    """Drive one planned episode into ``episode_dir`` (in this process); returns results.json."""
    from kaido.simulation.drive import drive

    episode_dir = Path(episode_dir)
    episode_dir.mkdir(parents=True, exist_ok=True)
    if plan.town is not None:
        write_town(TownSpec(**plan.town), episode_dir / "town.xodr")
    return drive(drive_options(plan, episode_dir)).results_path


def _main(argv: Sequence[str]) -> int:
    """Entry point of an episode's process: ``python -m kaido.simulation.collect EPISODE_DIR``
    drives the plan in ``EPISODE_DIR/episode.json``; exit code 1 (traceback on stderr) on error."""
    if len(argv) != 1:
        print("usage: python -m kaido.simulation.collect EPISODE_DIR", file=sys.stderr)
        return 2
    folder = Path(argv[0])
    try:
        plan = EpisodePlan.from_dict(json.loads((folder / PLAN_NAME).read_text(encoding="utf-8")))
        run_planned_episode(plan, folder)
    except Exception as err:
        traceback.print_exc()
        print(f"episode failed: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
        return 1
    return 0


# -- the manifest --------------------------------------------------------------------------------


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    """``OUT/collect.json`` as data, or None when absent; ``ValueError`` naming it if broken."""
    path = Path(out_dir) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict) or data.get("format") != COLLECT_FORMAT:
        raise ValueError(f"{path}: not a kaido collection manifest (format {COLLECT_FORMAT!r})")
    return data


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _pending_entry(plan: EpisodePlan) -> dict[str, Any]:
    return {
        "name": plan.name,
        "status": "pending",
        "plan": plan.to_dict(),
        "town": plan.map_name,
        "seed": plan.seed,
        "traffic_density": plan.traffic_density,
        "pedestrians": plan.pedestrians,
        "events": list(plan.events),
        "mcap": f"{plan.name}/run.mcap",
        "results": f"{plan.name}/results.json",
        "map_file": f"{plan.name}/town.xodr" if plan.town is not None else plan.map_path,
        "error": None,
    }


def _finished(out_dir: Path, entry: Mapping[str, Any]) -> bool:
    return (
        entry.get("status") == "ok"
        and (out_dir / str(entry["mcap"])).is_file()
        and (out_dir / str(entry["results"])).is_file()
    )


def _result_fields(results_path: Path) -> dict[str, Any]:
    document = json.loads(results_path.read_text(encoding="utf-8"))
    record = document["_checkpoint"]["records"][0]
    episode = document.get("kaido", {}).get("episode", {})
    return {
        "result_status": record.get("status"),
        "driving_score": record.get("scores", {}).get("score_composed"),
        "sim_seconds": episode.get("sim_seconds"),
        "wall_seconds": episode.get("wall_seconds"),
        "git_commit": document.get("kaido", {}).get("provenance", {}).get("git", {}).get("commit"),
        "crash_message": record.get("kaido", {}).get("crash_message"),
    }


def _log_tail(path: Path, lines: int = 1) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except FileNotFoundError:
        return ""
    return " | ".join(text[-lines:])


@dataclass(frozen=True)
class CollectSummary:
    """What a :func:`collect` call did."""

    manifest_path: Path
    ok: int
    failed: int
    skipped: int
    """Episodes already finished by an earlier run."""
    wall_seconds: float
    failures: tuple[tuple[str, str], ...]
    """(episode, error) of each failed episode."""


def collect(
    config: CollectConfig | Sequence[EpisodePlan],
    out_dir: Path,
    *,
    workers: int | None = None,
    progress: bool = True,
    episode_timeout: float | None = None,
    on_episode: Callable[[Mapping[str, Any]], None] | None = None,
) -> CollectSummary:
    """Run a collection into ``out_dir`` (see the module docstring); resumes an earlier run.

    ``config`` is a :class:`CollectConfig` (planned with :func:`make_plan`) or an explicit list
    of plans. ``workers`` episodes run at a time (default: the CPU count). An episode still
    running after ``episode_timeout`` [s] (default ``max(600, 30 * seconds)``) is killed and
    failed. ``on_episode`` is called with each finished episode's manifest entry.
    """
    out_dir = Path(out_dir)
    if isinstance(config, CollectConfig):
        plans = make_plan(config)
        config_data: Any = to_jsonable(config)
    else:
        plans = list(config)
        config_data = {"plans": len(plans)}
    if not plans:
        raise ValueError("collect: nothing to do (no episodes planned)")
    names = [p.name for p in plans]
    if len(set(names)) != len(names):
        raise ValueError("collect: episode names must be unique")
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 1:
        raise ValueError(f"collect: workers must be >= 1, got {workers}")
    out_dir.mkdir(parents=True, exist_ok=True)

    previous = read_manifest(out_dir)
    old = {e["name"]: e for e in (previous or {}).get("episodes", [])}
    entries: dict[str, dict[str, Any]] = {}
    for plan in plans:
        entry = old.pop(plan.name, None)
        if entry is not None and entry.get("plan") != plan.to_dict():
            raise ValueError(
                f"{out_dir / MANIFEST_NAME}: episode {plan.name} was planned differently by an "
                f"earlier run (other seed, seconds or options); use another --out folder"
            )
        entries[plan.name] = entry if entry is not None else _pending_entry(plan)
    for name, entry in old.items():  # episodes of a larger earlier plan stay listed
        entries[name] = entry
    manifest: dict[str, Any] = {
        "format": COLLECT_FORMAT,
        "config": config_data,
        "provenance": provenance(config_data),
        "episodes": [],
    }

    def save() -> None:
        listed = sorted(entries.values(), key=lambda e: str(e["name"]))
        manifest["episodes"] = listed
        manifest["counts"] = {
            status: sum(e["status"] == status for e in listed)
            for status in ("ok", "failed", "pending")
        }
        _write_json(out_dir / MANIFEST_NAME, manifest)

    todo = deque(p for p in plans if not _finished(out_dir, entries[p.name]))
    skipped = len(plans) - len(todo)
    for plan in todo:
        entries[plan.name].update(status="pending", error=None)
    save()

    timeout = episode_timeout
    running: list[tuple[subprocess.Popen[bytes], EpisodePlan, float, IO[bytes]]] = []
    ok = failed = 0
    failures: list[tuple[str, str]] = []
    t0 = time.perf_counter()
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc="collect", unit="episode", disable=not progress)
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)

    def finish(plan: EpisodePlan, error: str | None, wall: float) -> None:
        nonlocal ok, failed
        entry = entries[plan.name]
        results = out_dir / str(entry["results"])
        if error is None and not results.is_file():
            error = "the episode wrote no results.json"
        if error is None:
            try:
                entry.update(_result_fields(results))
            except (KeyError, IndexError, ValueError) as err:
                error = f"unreadable results.json: {err}"
            else:
                crash = entry.get("crash_message")
                if crash:  # the agent or the simulator broke: the log is not expert driving
                    error = f"{entry.get('result_status')}: {str(crash).splitlines()[0]}"
        entry["process_seconds"] = wall
        if error is None:
            entry.update(status="ok", error=None)
            ok += 1
        else:
            entry.update(status="failed", error=error)
            failed += 1
            failures.append((plan.name, error))
        save()
        bar.update(1)
        bar.set_postfix(ok=ok, failed=failed)
        if on_episode is not None:
            on_episode(dict(entry))

    try:
        while todo or running:
            while todo and len(running) < workers:
                plan = todo.popleft()
                folder = out_dir / plan.name
                folder.mkdir(parents=True, exist_ok=True)
                for stale in ("run.mcap", "results.json"):
                    (folder / stale).unlink(missing_ok=True)
                _write_json(folder / PLAN_NAME, plan.to_dict())
                log_file: IO[bytes] = open(folder / LOG_NAME, "wb")
                process = subprocess.Popen(
                    [sys.executable, "-m", "kaido.simulation.collect", str(folder)],
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
                running.append((process, plan, time.perf_counter(), log_file))
            time.sleep(0.1)
            now = time.perf_counter()
            still: list[tuple[subprocess.Popen[bytes], EpisodePlan, float, IO[bytes]]] = []
            for process, plan, started, log in running:
                limit = timeout if timeout is not None else max(600.0, 30.0 * plan.seconds)
                code = process.poll()
                if code is None and now - started <= limit:
                    still.append((process, plan, started, log))
                    continue
                error = None
                if code is None:
                    process.kill()
                    process.wait()
                    error = f"killed after {limit:.0f} s (episode timeout)"
                elif code != 0:
                    tail = _log_tail(out_dir / plan.name / LOG_NAME)
                    error = f"exit code {code}" + (f": {tail}" if tail else "")
                log.close()
                finish(plan, error, now - started)
            running = still
    finally:
        for process, _, _, log in running:
            process.kill()
            process.wait()
            log.close()
        bar.close()
    return CollectSummary(
        manifest_path=out_dir / MANIFEST_NAME,
        ok=ok,
        failed=failed,
        skipped=skipped,
        wall_seconds=time.perf_counter() - t0,
        failures=tuple(failures),
    )


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
