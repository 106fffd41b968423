"""The ``kaido`` command line, run as a user runs it (a subprocess of the installed script)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from kaido.scene.road_map import RoadMap
from kaido.simulation.video import mp4_video_codec
from kaido.tools.cli import main
from tests.conftest import shared_file

pytest.importorskip("carla")


def kaido(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kaido.tools.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def test_map_generate_info_render_round_trip(tmp_path: Path) -> None:
    xodr = tmp_path / "town.xodr"
    result = kaido("map", "generate", "--seed", "3", "--lanes", "2", "--out", str(xodr))
    assert result.returncode == 0, result.stderr
    assert xodr.is_file() and "<OpenDRIVE" in xodr.read_text()
    info = kaido("map", "info", str(xodr), "--json")
    assert info.returncode == 0, info.stderr
    summary = json.loads(info.stdout)
    direct = RoadMap.from_file(xodr).summary()
    assert summary["junctions"] == direct.junctions >= 5
    assert summary["lane_km"] == pytest.approx(direct.lane_km) and direct.lane_km > 1.0
    png = tmp_path / "town.png"
    render = kaido("map", "render", str(xodr), "--out", str(png))
    assert render.returncode == 0, render.stderr
    image = cv2.imread(str(png))
    assert image is not None and image.shape[2] == 3 and image.std() > 5


def test_map_info_on_a_real_town(capsys: pytest.CaptureFixture[str]) -> None:
    town = shared_file("maps/Town01.xodr")
    assert main(["map", "info", str(town)]) == 0
    out = capsys.readouterr().out
    for label in ("roads", "lanes", "junctions", "lane-km", "bounds"):
        assert label in out
    assert "junctions  12" in out


def test_map_render_with_a_leaderboard_route(tmp_path: Path) -> None:
    town = shared_file("maps/Town01.xodr")
    routes = shared_file("routes/lb1_routes_training.xml")
    png = tmp_path / "route.png"
    args = ["map", "render", str(town), "--out", str(png)]
    args += ["--route", str(routes), "--route-id", "0"]
    assert main(args) == 0
    with_route = cv2.imread(str(png))
    assert main(["map", "render", str(town), "--out", str(tmp_path / "plain.png")]) == 0
    plain = cv2.imread(str(tmp_path / "plain.png"))
    assert with_route.shape == plain.shape

    # the route is drawn in red (BGR 60, 60, 235) over the plain map
    def red(image: np.ndarray) -> int:
        return int(((image[..., 2] > 200) & (image[..., 0] < 100) & (image[..., 1] < 100)).sum())

    assert red(with_route) > 1000
    assert red(plain) < red(with_route) / 10


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["map", "info", "missing.xodr"], "missing.xodr: no such OpenDRIVE file"),
        (["map", "render", "BAD", "--out", "x.png"], "BAD: no such OpenDRIVE file"),
        (["map", "generate", "--lanes", "5", "--out", "x.xodr"], "lanes_per_direction"),
        (["bench", "nosuch"], "unknown benchmark 'nosuch'"),
        (["map", "info"], "the following arguments are required: path"),
        (["map"], "required"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = kaido(*args, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0] and lines[0].startswith("kaido")


def test_route_errors_name_the_route(tmp_path: Path) -> None:
    town = shared_file("maps/Town01.xodr")
    routes = shared_file("routes/lb1_routes_training.xml")
    bad_xml = tmp_path / "routes.xml"
    bad_xml.write_text("<routes><route id='0' town='Town01'><waypoint x='1'/></routes>")
    cases = [
        (["--route", str(routes), "--route-id", "999"], "999"),
        (["--route", str(routes)], "--route needs --route-id"),
        (["--route", str(bad_xml), "--route-id", "0"], "routes.xml"),
    ]
    # a Town06 route on the Town01 map
    town06_id = next(
        line.split('id="')[1].split('"')[0]
        for line in routes.read_text().splitlines()
        if 'town="Town06"' in line
    )
    cases.append((["--route", str(routes), "--route-id", town06_id], f"route {town06_id}"))
    for extra, message in cases:
        result = kaido("map", "render", str(town), "--out", str(tmp_path / "x.png"), *extra)
        assert result.returncode == 2, (extra, result.stderr)
        line = result.stderr.strip()
        assert "\n" not in line and message in line, (extra, line)


def test_malformed_map_file_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "broken.xodr"
    bad.write_text("<OpenDRIVE><road></OpenDRIVE>")
    result = kaido("map", "info", str(bad))
    assert result.returncode == 2
    assert "broken.xodr" in result.stderr and "malformed" in result.stderr


def test_drive_writes_results_log_and_video(tmp_path: Path) -> None:
    pytest.importorskip("libsumo")
    from kaido.logs.mcap_log import log_summary

    out = tmp_path / "drive"
    result = kaido("drive", "--seconds", "6", "--seed", "1", "--quiet", "--out", str(out))
    assert result.returncode == 0, result.stderr
    for label in ("driving score", "route completion", "sim speed", "results", "video"):
        assert label in result.stdout
    document = json.loads((out / "results.json").read_text())
    record = document["_checkpoint"]["records"][0]
    assert 0.0 <= record["scores"]["score_composed"] <= 100.0
    assert document["kaido"]["provenance"]["versions"]["carla"] == "0.9.16"
    summary = log_summary(out / "run.mcap")
    assert summary["complete"]
    for topic in (
        "/camera/front/image",
        "/lidar/top",
        "/tf",
        "/scene/agents",
        "/scene/route",
        "/kaido/ego_state",
        "/kaido/control",
        "/kaido/plan",
    ):
        assert summary["topics"][topic]["count"] > 0, topic
    capture = cv2.VideoCapture(str(out / "bev.mp4"))
    frames = 0
    while capture.read()[0]:
        frames += 1
    assert frames >= 50
    files = document["kaido"]["episode"]["files"]
    assert files["video_codec"] == mp4_video_codec(out / "bev.mp4") == "vp09"


def test_drive_bad_input_exits_2(tmp_path: Path) -> None:
    cases = [
        (["--map", "nowhere.xodr"], "nowhere.xodr"),
        (["--event", "meteor@3"], "event 'meteor@3'"),
        (["--route-id", "3"], "--route-id needs --routes"),
        (["--agent", "nobody"], "nobody"),
    ]
    for extra, message in cases:
        result = kaido(
            "drive", "--no-sensors", "--quiet", "--seconds", "1", "--out", str(tmp_path), *extra
        )
        assert result.returncode == 2, (extra, result.stderr)
        line = result.stderr.strip()
        assert "\n" not in line and message in line, (extra, line)
