"""``kaido collect``: the plan, parallel episodes, the manifest, resuming and failures.

The helpers :func:`collected_logs` (two short episodes with 2 workers, on a small sensor rig)
are shared with the dataset tests: calling them again in the same pytest run resumes the
collection, which is then free.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from kaido.logs.dataset import log_metadata
from kaido.logs.mcap_log import TOPIC_ROUTE, camera_image_topic, lidar_topic, log_summary
from kaido.provenance import to_jsonable
from kaido.scene.sensors import load_sensor_rig
from kaido.scene.town_generator import TownSpec
from kaido.simulation.collect import (
    CollectConfig,
    EpisodePlan,
    collect,
    drive_options,
    make_plan,
    plan_episode,
    read_manifest,
)
from kaido.simulation.drive import DEFAULT_RIG
from tests.conftest import shared_file

EPISODE_SECONDS = 5.0

SMALL_RIG = {
    "cameras": [
        {
            "name": "front",
            "width": 256,
            "height": 144,
            "fov_deg": 90.0,
            "extrinsics": {"x": 1.5, "z": 1.6},
        }
    ],
    "lidars": [
        {
            "name": "top",
            "channels": 16,
            "upper_fov_deg": 10.0,
            "lower_fov_deg": -30.0,
            "range_min": 0.5,
            "range_max": 60.0,
            "rotation_frequency": 10.0,
            "points_per_second": 81920,
            "extrinsics": {"x": 1.3, "z": 2.0},
        }
    ],
}
"""A rig small enough to render fast: one 256x144 camera, a 16-beam lidar."""


def small_rig(folder: Path) -> Path:
    path = folder / "small_rig.yaml"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(SMALL_RIG))
    return path


def episode_plans(rig: Path) -> list[EpisodePlan]:
    """A stopped vehicle ahead on an empty road; a street with traffic and pedestrians."""

    def town(name: str, seed: int) -> dict[str, object]:
        spec = TownSpec(rows=3, cols=3, block_length=90.0, seed=seed, name=name)
        return dict(to_jsonable(spec))

    common = {"seconds": EPISODE_SECONDS, "map_path": None, "rig": str(rig)}
    return [
        EpisodePlan(
            name="stopped",
            index=0,
            seed=5,
            traffic_density=0.0,
            pedestrians=0.0,
            events=("stopped_vehicle@0:22",),
            town=town("ta", 1),
            **common,  # type: ignore[arg-type]
        ),
        EpisodePlan(
            name="traffic",
            index=1,
            seed=6,
            traffic_density=40.0,
            pedestrians=30.0,
            events=(),
            town=town("tb", 2),
            **common,  # type: ignore[arg-type]
        ),
    ]


def collected_logs(root: Path) -> Path:
    """``root/logs``: the two episodes of :func:`episode_plans` (collected once per run)."""
    out = root / "logs"
    plans = episode_plans(small_rig(root))
    summary = collect(plans, out, workers=2, progress=False)
    assert summary.failed == 0, summary.failures
    return out


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return collected_logs(tmp_path_factory.getbasetemp() / "kaido-data")


def test_plan_is_deterministic_varied_and_extends() -> None:
    small = make_plan(CollectConfig(episodes=3, seconds=20.0, seed=7))
    large = make_plan(CollectConfig(episodes=12, seconds=20.0, seed=7))
    assert [p.to_dict() for p in small] == [p.to_dict() for p in large[:3]]
    assert plan_episode(CollectConfig(episodes=12, seconds=20.0, seed=7), 5) == large[5]
    other = make_plan(CollectConfig(episodes=3, seconds=20.0, seed=8))
    assert [p.seed for p in other] != [p.seed for p in small]
    # varied: towns, densities and some events over a dozen episodes
    assert len({json.dumps(p.town, sort_keys=True) for p in large}) == 12
    assert len({p.traffic_density for p in large}) >= 3
    assert any(p.events for p in large) and any(not p.events for p in large)
    for plan in large:
        assert plan.town is not None and plan.map_path is None
        TownSpec(**plan.town)  # a valid town
        assert EpisodePlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan


def test_plan_on_carla_towns_uses_their_routes() -> None:
    town01 = shared_file("maps/Town01.xodr")
    routes = shared_file("routes/lb1_routes_devtest.xml")
    config = CollectConfig(
        episodes=8, seconds=10.0, maps=(town01,), map_fraction=1.0, routes=routes
    )
    plans = make_plan(config)
    assert all(p.map_path == str(town01.resolve()) and p.town is None for p in plans)
    assert all(p.route_id is not None and p.routes == str(routes.resolve()) for p in plans)
    options = drive_options(plans[0], Path("/tmp/episode"))
    assert options.map_path == town01.resolve() and options.route_id == plans[0].route_id
    assert options.extra["collect.map_source"] == "file"


def test_config_errors_name_the_value(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="episodes"):
        CollectConfig(episodes=0)
    with pytest.raises(ValueError, match="seconds"):
        CollectConfig(seconds=-1.0)
    with pytest.raises(FileNotFoundError, match=r"nowhere\.xodr"):
        CollectConfig(maps=(tmp_path / "nowhere.xodr",))
    with pytest.raises(FileNotFoundError, match=r"rig\.yaml"):
        CollectConfig(rig=tmp_path / "rig.yaml")


def test_collect_writes_logs_manifest_and_what_dataset_build_needs(logs_dir: Path) -> None:
    manifest = read_manifest(logs_dir)
    assert manifest is not None
    assert manifest["counts"] == {"ok": 2, "failed": 0, "pending": 0}
    entries = {e["name"]: e for e in manifest["episodes"]}
    assert set(entries) == {"stopped", "traffic"}
    rig = load_sensor_rig(logs_dir.parent / "small_rig.yaml")
    for name, entry in entries.items():
        assert entry["status"] == "ok" and entry["error"] is None
        assert entry["sim_seconds"] == pytest.approx(EPISODE_SECONDS)
        assert entry["plan"]["name"] == name
        mcap = logs_dir / entry["mcap"]
        summary = log_summary(mcap)
        assert summary["complete"]
        topics = summary["topics"]
        # sensors on at 10 Hz over 5 s of 20 Hz ticks, the route once
        assert topics[camera_image_topic("front")]["count"] == 50
        assert topics[lidar_topic("top")]["count"] == 50
        assert topics[TOPIC_ROUTE]["count"] == 1
        metadata = log_metadata(mcap)
        assert json.loads(metadata["sensor_rig"]) == rig.to_dict()
        config = json.loads(metadata["provenance"])["config"]
        assert config["agent"] == "expert" and config["video"] is False
        assert Path(config["map_path"]) == (logs_dir / entry["map_file"]).resolve()
        assert json.loads(config["extra"]["collect.town_spec"]) == entry["plan"]["town"]
        assert not (logs_dir / name / "bev.mp4").exists()
    events = json.loads((logs_dir / "stopped" / "results.json").read_text())
    assert [e[1] for e in events["kaido"]["episode"]["events"]] == ["stopped_vehicle"]


def test_rerun_skips_finished_episodes(logs_dir: Path) -> None:
    mcap = logs_dir / "stopped" / "run.mcap"
    before = mcap.stat().st_mtime_ns
    summary = collect(
        episode_plans(small_rig(logs_dir.parent)), logs_dir, workers=2, progress=False
    )
    assert (summary.ok, summary.failed, summary.skipped) == (0, 0, 2)
    assert mcap.stat().st_mtime_ns == before


def test_a_crashing_episode_fails_alone_and_is_retried(tmp_path: Path) -> None:
    good, _ = episode_plans(small_rig(tmp_path))
    quiet = {"seconds": 1.0, "name": "good", "events": [], "pedestrians": 0.0}
    good = EpisodePlan.from_dict({**good.to_dict(), **quiet})
    bad = EpisodePlan.from_dict(
        {**good.to_dict(), "name": "bad", "town": None, "map_path": str(tmp_path / "gone.xodr")}
    )
    seen: list[str] = []
    summary = collect(
        [bad, good], tmp_path / "out", workers=2, progress=False,
        on_episode=lambda e: seen.append(e["name"]),
    )  # fmt: skip
    assert (summary.ok, summary.failed) == (1, 1)
    assert sorted(seen) == ["bad", "good"]
    manifest = read_manifest(tmp_path / "out")
    assert manifest is not None
    entries = {e["name"]: e for e in manifest["episodes"]}
    assert entries["good"]["status"] == "ok"
    assert entries["bad"]["status"] == "failed"
    assert "gone.xodr" in entries["bad"]["error"]
    # a re-run retries the failed episode only
    again = collect([bad, good], tmp_path / "out", workers=2, progress=False)
    assert (again.ok, again.failed, again.skipped) == (0, 1, 1)


def test_a_changed_plan_in_the_same_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = make_plan(CollectConfig(episodes=1, seconds=1.0, seed=1, rig=small_rig(tmp_path)))
    manifest = {
        "format": "kaido-collect/1",
        "episodes": [{"name": first[0].name, "status": "ok", "plan": first[0].to_dict()}],
    }
    out.mkdir()
    (out / "collect.json").write_text(json.dumps(manifest))
    other = make_plan(CollectConfig(episodes=1, seconds=1.0, seed=2, rig=small_rig(tmp_path)))
    with pytest.raises(ValueError, match="planned differently"):
        collect(other, out, workers=1, progress=False)


@pytest.mark.slow
def test_collect_the_default_plan_with_a_carla_town(tmp_path: Path) -> None:
    town01 = shared_file("maps/Town01.xodr")
    routes = shared_file("routes/lb1_routes_devtest.xml")
    config = CollectConfig(
        episodes=4, seconds=12.0, seed=0, rig=DEFAULT_RIG, maps=(town01,), routes=routes
    )
    summary = collect(config, tmp_path, workers=2, progress=False)
    assert summary.failed == 0, summary.failures
    manifest = read_manifest(tmp_path)
    assert manifest is not None and manifest["counts"]["ok"] == 4
    towns = {e["town"] for e in manifest["episodes"]}
    assert "Town01" in towns and len(towns) >= 2
