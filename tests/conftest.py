"""Shared fixtures: the real data folder beside the project (``../shared/data``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from kaido.settings import carla_server

# Property tests draw the same examples on every run (CI included): a failure reproduces.
settings.register_profile("kaido", derandomize=True, print_blob=True)
settings.load_profile("kaido")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("KAIDO_SHARED_DATA", ROOT.parent / "shared" / "data"))


def shared_file(relative: str) -> Path:
    """Path of a file in the shared data folder; skips the test when it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"shared data file {path} is absent")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent")
    return SHARED_DATA


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if carla_server() is not None:
        return
    skip = pytest.mark.skip(reason="needs a live CARLA server: set KAIDO_CARLA_HOST")
    for item in items:
        if item.get_closest_marker("carla") is not None:
            item.add_marker(skip)
