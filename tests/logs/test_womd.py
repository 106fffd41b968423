"""Waymo Open Motion reader: CRC32C, TFRecord framing, protobuf wire decoding, the sample."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pytest
from foxglove_schemas_protobuf.Vector3_pb2 import Vector3
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from kaido.logs.womd import (
    WOMD_HORIZONS_S,
    crc32c,
    decode_fields,
    load_womd_scenario,
    masked_crc32c,
    read_tfrecords,
)
from kaido.scene.agents import AgentIndex
from tests.conftest import shared_file

SAMPLE = "waymo/womd/motion_data_one_scenario.tfrecord"


def _crc32c_bitwise(data: bytes) -> int:
    """Bit-at-a-time CRC-32C, the definition the table-driven version must equal."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def test_crc32c_known_vectors() -> None:
    # RFC 3720 (iSCSI) appendix B.4 and the classic check value
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    assert crc32c(b"") == 0


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64))
def test_crc32c_equals_the_bitwise_definition(data: bytes) -> None:
    assert crc32c(data) == _crc32c_bitwise(data)


def _record(payload: bytes) -> bytes:
    head = struct.pack("<Q", len(payload))
    return (
        head
        + struct.pack("<I", masked_crc32c(head))
        + payload
        + struct.pack("<I", masked_crc32c(payload))
    )


def test_tfrecord_round_trip_and_damage(tmp_path: Path) -> None:
    path = tmp_path / "x.tfrecord"
    payloads = [b"alpha", b"", b"gamma" * 100]
    data = b"".join(_record(p) for p in payloads)
    path.write_bytes(data)
    assert list(read_tfrecords(path)) == payloads
    path.write_bytes(data[:-3])
    with pytest.raises(ValueError, match=r"truncated TFRecord: record 2 at byte"):
        list(read_tfrecords(path))
    flipped = bytearray(data)
    flipped[12 + 2] ^= 0x01  # a data byte of record 0
    path.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="record 0 at byte 0: data CRC mismatch"):
        list(read_tfrecords(path))


def test_wire_decoder_agrees_with_protobuf() -> None:
    fields = decode_fields(Vector3(x=1.5, y=-2.0, z=3.25).SerializeToString())
    got = [struct.unpack("<d", fields[n][0].value)[0] for n in (1, 2, 3)]  # type: ignore[arg-type]
    assert got == [1.5, -2.0, 3.25]
    stamp = Timestamp(seconds=1_700_000_000, nanos=123_456_789)
    fields = decode_fields(stamp.SerializeToString())
    assert fields[1][0].value == 1_700_000_000 and fields[2][0].value == 123_456_789


def test_wire_decoder_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="past the end"):
        decode_fields(b"\x0a\x05ab")  # field 1, length 5, only 2 bytes


def test_sample_scenario_facts() -> None:
    path = shared_file(SAMPLE)
    records = list(read_tfrecords(path))
    assert len(records) == 1  # both CRCs of the real file check out
    s = load_womd_scenario(path)
    assert s.timestamps_ns.shape == (91,)
    assert math.isclose(s.timestamps_ns[10] * 1e-9, 1.0, abs_tol=2e-3)
    proto = s.protocol
    assert proto is not None
    assert proto.current_index == 10 and proto.predicted_steps == 80
    assert math.isclose(proto.observed_seconds, 1.1, abs_tol=1e-3)
    assert proto.horizons_s == WOMD_HORIZONS_S
    assert 1 <= len(proto.scored_track_ids) <= 8
    assert s.ego_track is not None and s.ego_track.track_id not in s.track_ids
    # every predicted track is observed at the present
    states, valid = s.states_on_grid(proto.scored_track_ids)
    assert valid[:, 10].all()
    # box sizes are real (WOMD stores them) and speeds plausible for road users
    assert np.all(states[valid][:, AgentIndex.LENGTH] > 0.2)
    assert np.all(np.hypot(states[valid][:, AgentIndex.VX], states[valid][:, AgentIndex.VY]) < 40)
    # the ego drives on the lane graph
    assert s.road_map is not None and s.road_map.num_driving_lanes > 10
    ego_now = s.ego_track.states[10]
    proj = s.road_map.nearest_lane(float(ego_now[0]), float(ego_now[1]), max_distance=3.0)
    assert proj is not None


def test_not_a_tfrecord(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tfrecord"
    bad.write_bytes(b"this is not a tfrecord file at all")
    with pytest.raises(ValueError, match="length CRC mismatch"):
        load_womd_scenario(bad)
