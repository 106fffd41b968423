"""Replay sets: recorded logs as a route set for ``kaido eval --replay-set FILE``.

A replay set is a small YAML file::

    name: highway-regressions      # required: the set's name
    reactive: false                # optional: default of the entries' ``reactive`` (false)
    entries:                       # required: one "route" per entry, replayed in this order
      - source: logs/run_0.mcap    # required: the log, relative to this file's folder or absolute
        id: merge-left             # optional: the route id (default: the source's file stem)
        reactive: true             # optional: agents switch to IDM once the ego deviates

Each entry is replayed closed loop with
:func:`kaido.simulation.replay.closed_loop.run_closed_loop` (logged traffic, simulated ego), so
it is scored like a drive and writes the same ``results.json``, ``run.mcap`` and ``bev.mp4`` into
its route folder. Its record additionally carries the replay section under ``meta.replay``
(progress ratio against the logged ego, the largest deviation from it, the source and its
format). Entry ids must be unique within a set.

The replay is deterministic given the log: an evaluation seed does not change the traffic, the
map or the route, and reaches only the agent (kaido's own agents are deterministic, so for them
every seed gives the same scores).

A source that is missing or cannot be replayed makes :func:`replay_entry` raise
:class:`ReplaySourceError` naming the file; the set itself loads without opening any source, so
one bad entry fails alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from kaido.simulation.replay.closed_loop import run_closed_loop
from kaido.simulation.results import RouteResult

__all__ = [
    "REPLAY_META_KEY",
    "ReplayEntry",
    "ReplaySet",
    "ReplaySourceError",
    "load_replay_set",
    "replay_entry",
]

REPLAY_META_KEY = "replay"
"""Key of the replay section in a route record's ``meta``."""

_TOP_KEYS = frozenset({"name", "reactive", "entries"})
_ENTRY_KEYS = frozenset({"source", "id", "reactive"})


class ReplaySourceError(RuntimeError):
    """A replay set entry's source is missing or could not be replayed (the message names it)."""


@dataclass(frozen=True)
class ReplayEntry:
    """One entry of a replay set: one log replayed closed loop as one route."""

    route_id: str
    source: Path
    """The log (an absolute path)."""
    reactive: bool = False
    """Whether the logged agents switch to IDM along their logged paths once the ego deviates."""

    @property
    def town(self) -> str:
        """What a record of this entry names as its map before the log is read."""
        return "replay"


@dataclass(frozen=True)
class ReplaySet:
    """A replay set file, loaded (sources are not opened)."""

    name: str
    path: Path
    """The YAML file (absolute)."""
    entries: tuple[ReplayEntry, ...]


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{where}: must be true or false, got {value!r}")
    return value


def load_replay_set(path: Path | str) -> ReplaySet:
    """Read the replay set YAML at ``path`` (format in the module docstring).

    ``FileNotFoundError`` when the file is missing; ``ValueError`` naming the file and the field
    for bad YAML, missing or unknown keys, wrong types and repeated entry ids.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such replay set file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ValueError(f"{path}: unreadable replay set ({err})") from err
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: a replay set is a mapping with name and entries")
    unknown = sorted(str(k) for k in set(data) - _TOP_KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; allowed: {sorted(_TOP_KEYS)}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{path}: name: must be a non-empty string, got {name!r}")
    default_reactive = _bool(data.get("reactive", False), f"{path}: reactive")
    raw_entries = data.get("entries")
    if not isinstance(raw_entries, list) or not raw_entries:
        raise ValueError(f"{path}: entries: must be a non-empty list, got {raw_entries!r}")
    entries: list[ReplayEntry] = []
    for i, raw in enumerate(raw_entries):
        where = f"{path}: entries[{i}]"
        if not isinstance(raw, Mapping):
            raise ValueError(f"{where}: must be a mapping with source, got {raw!r}")
        unknown = sorted(str(k) for k in set(raw) - _ENTRY_KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_ENTRY_KEYS)}")
        source = raw.get("source")
        if not isinstance(source, str) or not source.strip():
            raise ValueError(f"{where}.source: must be a path, got {source!r}")
        source_path = Path(source).expanduser()
        if not source_path.is_absolute():
            source_path = path.parent / source_path
        route_id = raw.get("id", source_path.stem)
        if isinstance(route_id, bool) or not isinstance(route_id, str | int):
            raise ValueError(f"{where}.id: must be a string, got {route_id!r}")
        route_id = str(route_id).strip()
        if not route_id:
            raise ValueError(f"{where}.id: must not be empty")
        reactive = _bool(raw.get("reactive", default_reactive), f"{where}.reactive")
        entries.append(ReplayEntry(route_id, source_path.resolve(), reactive))
    ids = [e.route_id for e in entries]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ValueError(
            f"{path}: entry ids repeat: {repeated}; give the entries distinct 'id:' values"
        )
    return ReplaySet(name=name.strip(), path=path, entries=tuple(entries))


def _source_format(section: Mapping[str, Any], source: Path) -> str:
    for key in ("source_format", "format"):
        value = section.get(key)
        if isinstance(value, str) and value:
            return value
    return source.suffix.lstrip(".").lower() or "unknown"


def replay_entry(
    entry: ReplayEntry,
    index: int,
    out_dir: Path,
    *,
    agent: str = "expert",
    agent_options: Mapping[str, Any] | None = None,
    record_video: bool = False,
    record_mcap: bool = True,
    progress: bool = False,
) -> tuple[RouteResult, dict[str, Any]]:
    """Replay ``entry`` closed loop into ``out_dir``; its record (``route_id`` and ``index``
    set) and its replay section (``meta.replay`` of the record, with ``source_format``).

    Raises :class:`ReplaySourceError` naming the source when it is missing or its replay fails.
    """
    if not entry.source.is_file():
        raise ReplaySourceError(f"replay source {entry.source}: no such file")
    try:
        closed = run_closed_loop(
            entry.source,
            Path(out_dir),
            agent=agent,
            agent_options=dict(agent_options or {}),
            reactive=entry.reactive,
            record_video=record_video,
            record_mcap=record_mcap,
            progress=progress,
        )
    except Exception as err:  # any failure of this one source fails only its route
        first = (str(err).strip().splitlines() or [""])[0]
        raise ReplaySourceError(
            f"replay source {entry.source}: {type(err).__name__}: {first}"
        ) from err
    document = closed.episode.results_path
    section = dict(json.loads(document.read_text(encoding="utf-8")).get(REPLAY_META_KEY) or {})
    section["source_format"] = _source_format(section, entry.source)
    record = replace(closed.episode.result, route_id=entry.route_id, index=index)
    return record, section
