"""kaido's environment settings, read in this one place.

| variable | meaning | default |
|---|---|---|
| ``KAIDO_CACHE_DIR`` | folder for derived artefacts (SUMO nets, ...) | ``~/.cache/kaido`` |
| ``KAIDO_CARLA_HOST``, ``KAIDO_CARLA_PORT`` | live CARLA server (``carla`` tests) | unset, 2000 |
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """The cache folder (created on demand)."""
    root = Path(os.environ.get("KAIDO_CACHE_DIR", Path.home() / ".cache" / "kaido"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def cache_dir(name: str) -> Path:
    """A named sub-folder of the cache (created on demand)."""
    path = cache_root() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def carla_server() -> tuple[str, int] | None:
    """``(host, port)`` of a live CARLA server named by the environment, or None."""
    host = os.environ.get("KAIDO_CARLA_HOST")
    if not host:
        return None
    return host, int(os.environ.get("KAIDO_CARLA_PORT", "2000"))
