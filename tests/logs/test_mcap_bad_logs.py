"""Bad kaido logs: truncated, corrupted, time going backwards, missing sensors, wrong format."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from mcap.writer import Writer

from kaido.logs.mcap_log import (
    TOPIC_AGENTS,
    EpisodeRecorder,
    log_summary,
    read_log_with_report,
)
from kaido.logs.replay_source import load_kaido_log_scenario, open_source
from kaido.scene.agents import Control, EgoState
from kaido.scene.frame import Frame
from kaido.scene.geometry import SE2, Box3D
from kaido.scene.sensors import load_sensor_rig
from tests.logs.test_replay_source import write_small_log

ROOT = Path(__file__).resolve().parents[2]


def test_backwards_log_times_are_reported_with_their_position(tmp_path: Path) -> None:
    path = tmp_path / "back.mcap"
    t = [1_000_000_000 + i * 100_000_000 for i in range(5)]
    t[3] = t[1]  # tick 3 goes back in time
    write_small_log(path, 5, t)
    messages, report = read_log_with_report(path)
    assert report.complete and report.error is None
    assert len(report.time_reversals) == 1
    line = report.time_reversals[0]
    first_of_tick3 = next(
        i for i in range(1, len(messages)) if messages[i].log_time_ns < messages[i - 1].log_time_ns
    )
    assert messages[first_of_tick3].log_time_ns == t[1]
    assert f"message {first_of_tick3} " in line
    assert f"log time {t[1]} ns is before the previous message's {t[2]} ns" in line
    with pytest.raises(ValueError, match=f"log times go backwards: message {first_of_tick3}"):
        load_kaido_log_scenario(path)


def test_truncated_log_replays_its_whole_ticks_and_says_where_it_broke(tmp_path: Path) -> None:
    full = tmp_path / "full.mcap"
    write_small_log(full, 8)
    data = full.read_bytes()
    complete = load_kaido_log_scenario(full)
    assert complete.notes == ()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: len(data) // 4])
    s = open_source(cut)
    assert 1 <= s.timestamps_ns.shape[0] < 8
    assert s.timestamps_ns.tolist() == complete.timestamps_ns[: s.timestamps_ns.shape[0]].tolist()
    assert len(s.notes) == 1 and "truncated at byte" in s.notes[0]


def test_corrupted_chunk_stops_at_the_last_good_tick(tmp_path: Path) -> None:
    full = tmp_path / "full.mcap"
    write_small_log(full, 8)
    data = bytearray(full.read_bytes())
    chunks = []  # (offset, length) of the CHUNK records (opcode 0x06), walked by hand
    offset = 8
    while offset + 9 <= len(data):
        opcode, length = struct.unpack_from("<BQ", data, offset)
        if opcode == 0x06:
            chunks.append((offset, length))
        if opcode == 0x0F:  # DATA_END
            break
        offset += 9 + length
    assert len(chunks) >= 8  # one chunk per tick
    at, length = chunks[4]
    data[at + 9 + length - 10] ^= 0xFF  # inside the compressed records of tick 4
    bad = tmp_path / "bad.mcap"
    bad.write_bytes(bytes(data))
    _, report = read_log_with_report(bad, topics=[TOPIC_AGENTS])
    assert not report.complete and report.error is not None
    assert "at byte" in report.error
    s = load_kaido_log_scenario(bad)
    assert s.timestamps_ns.shape[0] == 4 and f"at byte {at}" in s.notes[0]


def test_log_missing_a_sensor_replays_without_it(tmp_path: Path) -> None:
    rig = load_sensor_rig(ROOT / "configs" / "sensors" / "default.yaml")
    path = tmp_path / "nosensor.mcap"
    with EpisodeRecorder(path, rig=rig, metadata={}) as rec:
        for i in range(3):
            ts = 1_000_000_000 + i * 100_000_000
            ego = EgoState(ts, SE2(float(i), 0.0, 0.0))
            frame = Frame(ts, ego, {}, {}, rig)  # the rig's cameras and lidars sent nothing
            rec.write_tick(
                timestamp_ns=ts,
                frame=frame,
                ego_box=Box3D(float(i) + 1.4, 0.0, 0.75, 0.0, 4.6, 1.9, 1.5),
                route_path=None,
                control=Control(),
            )
    summary = log_summary(path)
    assert not any(t.startswith(("/camera/", "/lidar/")) for t in summary["topics"])
    s = open_source(path)
    assert s.timestamps_ns.shape == (3,) and s.tracks == () and s.ego_track is not None


def test_an_mcap_of_another_format_names_the_expected_one(tmp_path: Path) -> None:
    path = tmp_path / "other.mcap"
    with open(path, "wb") as f:
        w = Writer(f)
        w.start(profile="ros2", library="test")
        w.add_metadata("kaido", {"log_format": "someone-else/3"})
        w.finish()
    with pytest.raises(
        ValueError, match=r"log_format 'someone-else/3'.*expected 'kaido-episode/1'"
    ):
        open_source(path)
