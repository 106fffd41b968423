"""Waymo Open Motion Dataset scenarios as :class:`ReplayScenario`, without TensorFlow.

Two layers, both written here with no dependency beyond NumPy:

* TFRecord framing (:func:`read_tfrecords`): each record is ``uint64 length``, ``uint32 masked
  CRC32C of the length bytes``, ``data``, ``uint32 masked CRC32C of the data`` (little-endian;
  mask: ``((crc >> 15) | (crc << 17)) + 0xa282ead8``). Both CRCs are checked (:func:`crc32c`,
  Castagnoli polynomial, reflected ``0x82f63b78``); a truncated or corrupted file raises
  ``ValueError`` naming the record and byte offset.
* The ``waymo.open_dataset.Scenario`` protobuf, decoded from the wire format
  (:func:`decode_fields`) for the fields kaido needs, by field number (``scenario.proto``,
  ``map.proto`` of the dataset): ``timestamps_seconds`` (1), ``tracks`` (2: ``id`` 1,
  ``object_type`` 2, ``states`` 3 with ``center_x/y/z`` 2-4, ``length/width/height`` 5-7,
  ``heading`` 8, ``velocity_x/y`` 9-10, ``valid`` 11), ``scenario_id`` (5), ``sdc_track_index``
  (6), ``map_features`` (8: ``id`` 1, ``lane`` 3 with ``speed_limit_mph`` 1, ``type`` 2,
  ``interpolating`` 3, ``polyline`` 8, ``entry_lanes`` 9, ``exit_lanes`` 10, ``left_neighbors``
  11 and ``right_neighbors`` 12 with ``feature_id`` 1), ``current_time_index`` (10),
  ``tracks_to_predict`` (11, ``track_index`` 1).

WOMD's frame is right-handed, metres, x/y in a local ENU-like frame: it is kaido's world frame
as it is. States are box centres. Only valid states become track samples. The protocol: 91 steps
at 10 Hz, present at ``current_time_index`` (10: 1.1 s observed), 80 steps (8 s) scored at
horizons 3, 5 and 8 s, K = 6, on ``tracks_to_predict``; the SDC is the ego.

Lanes: WOMD lane centres carry no width, so lanes get :data:`WOMD_LANE_WIDTH`; lanes flagged
``interpolating`` (the dataset's lanes through intersections) are intersection lanes; bike lanes
(type 3) are ``BIKING``; the others are driving lanes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from kaido.logs.replay_source import ReplayProtocol, ReplayScenario
from kaido.scene.agents import AgentClass, AgentIndex, Track
from kaido.scene.lane_graph import LaneGraphMap, LaneRecord
from kaido.scene.road_map import LaneType, MapError

__all__ = [
    "WOMD_CLASSES",
    "WOMD_HORIZONS_S",
    "WOMD_LANE_WIDTH",
    "WireField",
    "crc32c",
    "decode_fields",
    "load_womd_scenario",
    "masked_crc32c",
    "read_tfrecords",
]

FloatArray = npt.NDArray[np.float64]

WOMD_HORIZONS_S = (3.0, 5.0, 8.0)
"""[s] horizons the WOMD motion challenge reports."""
WOMD_LANE_WIDTH = 3.7
"""[m] width given to every WOMD lane (the dataset stores lane centres only)."""
WOMD_CLASSES = {
    1: AgentClass.VEHICLE,
    2: AgentClass.PEDESTRIAN,
    3: AgentClass.CYCLIST,
    4: AgentClass.UNKNOWN,
}
"""WOMD ``Track.ObjectType`` → kaido class (``TYPE_UNSET`` 0: ``UNKNOWN``)."""
_MPH = 0.44704


# -- CRC32C and TFRecord framing -----------------------------------------------------------------


def _crc_table() -> tuple[int, ...]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data`` (``crc32c(b"123456789") == 0xe3069283``)."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C of ``data``."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_tfrecords(path: Path | str, *, check_crc: bool = True) -> Iterator[bytes]:
    """The records of a TFRecord file, in order; ``ValueError`` naming the record and offset on
    a truncated file or a CRC mismatch."""
    p = Path(path)
    data = p.read_bytes()
    offset, index = 0, 0
    while offset < len(data):
        if len(data) - offset < 12:
            raise ValueError(
                f"{p}: truncated TFRecord: record {index} at byte {offset} has "
                f"{len(data) - offset} bytes, less than its 12-byte header"
            )
        head = data[offset : offset + 8]
        (length,) = struct.unpack("<Q", head)
        (length_crc,) = struct.unpack("<I", data[offset + 8 : offset + 12])
        if check_crc and masked_crc32c(head) != length_crc:
            raise ValueError(
                f"{p}: record {index} at byte {offset}: length CRC mismatch (not a TFRecord "
                f"file, or corrupted)"
            )
        end = offset + 12 + length + 4
        if end > len(data):
            raise ValueError(
                f"{p}: truncated TFRecord: record {index} at byte {offset} declares {length} "
                f"bytes, the file ends {end - len(data)} bytes short"
            )
        payload = data[offset + 12 : offset + 12 + length]
        (data_crc,) = struct.unpack("<I", data[end - 4 : end])
        if check_crc and masked_crc32c(payload) != data_crc:
            raise ValueError(f"{p}: record {index} at byte {offset}: data CRC mismatch")
        yield payload
        offset, index = end, index + 1


# -- protobuf wire format ------------------------------------------------------------------------


@dataclass(frozen=True)
class WireField:
    """One field as found on the wire: varint (``int``), fixed64/fixed32 (``bytes`` of 8/4) or
    length-delimited (``bytes``)."""

    wire_type: int
    value: int | bytes


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise ValueError("protobuf: varint runs past the end of the message")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("protobuf: varint longer than 10 bytes")


def decode_fields(buf: bytes) -> dict[int, list[WireField]]:
    """Field number → its occurrences, in order, of one protobuf message's bytes."""
    out: dict[int, list[WireField]] = {}
    pos = 0
    n = len(buf)
    while pos < n:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"protobuf: unsupported wire type {wire} (field {number})")
        if pos > n:
            raise ValueError(f"protobuf: field {number} runs past the end of the message")
        out.setdefault(number, []).append(WireField(wire, value))
    return out


def _bytes(f: WireField) -> bytes:
    if not isinstance(f.value, bytes):
        raise ValueError(
            f"protobuf: expected a length-delimited field, got wire type {f.wire_type}"
        )
    return f.value


def _int(fields: dict[int, list[WireField]], number: int, default: int = 0) -> int:
    found = fields.get(number)
    if not found:
        return default
    v = found[-1].value
    if not isinstance(v, int):
        raise ValueError(f"protobuf: field {number} is not a varint")
    return v - (1 << 64) if v >= 1 << 63 else v


def _double(fields: dict[int, list[WireField]], number: int, default: float = 0.0) -> float:
    found = fields.get(number)
    if not found:
        return default
    v = found[-1].value
    if isinstance(v, bytes) and len(v) == 8:
        return float(struct.unpack("<d", v)[0])
    if isinstance(v, bytes) and len(v) == 4:
        return float(struct.unpack("<f", v)[0])
    raise ValueError(f"protobuf: field {number} is not a fixed-width number")


def _repeated_doubles(fields: dict[int, list[WireField]], number: int) -> FloatArray:
    parts: list[FloatArray] = []
    for f in fields.get(number, []):
        v = f.value
        assert isinstance(v, bytes)
        parts.append(np.frombuffer(v, dtype="<f8").astype(np.float64))
    return np.concatenate(parts) if parts else np.zeros(0)


def _repeated_varints(fields: dict[int, list[WireField]], number: int) -> list[int]:
    out: list[int] = []
    for f in fields.get(number, []):
        if isinstance(f.value, int):
            out.append(f.value)
        else:
            pos = 0
            while pos < len(f.value):
                v, pos = _varint(f.value, pos)
                out.append(v)
    return [v - (1 << 64) if v >= 1 << 63 else v for v in out]


def _map_points(fields: dict[int, list[WireField]], number: int) -> FloatArray:
    pts = []
    for f in fields.get(number, []):
        p = decode_fields(_bytes(f))
        pts.append((_double(p, 1), _double(p, 2), _double(p, 3)))
    return np.array(pts, dtype=np.float64).reshape(-1, 3)


# -- the scenario --------------------------------------------------------------------------------


def _lane_record(feature_id: int, lane: dict[int, list[WireField]]) -> LaneRecord | None:
    polyline = _map_points(lane, 8)
    if len(polyline) < 2:
        return None
    lane_type = LaneType.BIKING if _int(lane, 2) == 3 else LaneType.DRIVING
    left = [_int(decode_fields(_bytes(f)), 1) for f in lane.get(11, [])]
    right = [_int(decode_fields(_bytes(f)), 1) for f in lane.get(12, [])]
    speed = _double(lane, 1) * _MPH
    return LaneRecord(
        lane_id=feature_id,
        centerline=polyline,
        lane_type=lane_type,
        width=WOMD_LANE_WIDTH,
        successors=tuple(_repeated_varints(lane, 10)),
        predecessors=tuple(_repeated_varints(lane, 9)),
        left_neighbor=left[0] if left else None,
        right_neighbor=right[0] if right else None,
        in_intersection=bool(_int(lane, 3)),
        speed_limit=speed if speed > 0 else None,
    )


def _track(
    where: str, fields: dict[int, list[WireField]], timestamps: npt.NDArray[np.int64]
) -> tuple[int, Track | None]:
    track_id = _int(fields, 1)
    cls = WOMD_CLASSES.get(_int(fields, 2), AgentClass.UNKNOWN)
    states = fields.get(3, [])
    if len(states) != len(timestamps):
        raise ValueError(
            f"{where}: track {track_id} has {len(states)} states for {len(timestamps)} timestamps"
        )
    rows, times = [], []
    for t, f in zip(timestamps, states, strict=True):
        s = decode_fields(_bytes(f))
        if not _int(s, 11):
            continue
        row = np.empty(len(AgentIndex))
        row[AgentIndex.X] = _double(s, 2)
        row[AgentIndex.Y] = _double(s, 3)
        row[AgentIndex.YAW] = _double(s, 8)
        row[AgentIndex.VX] = _double(s, 9)
        row[AgentIndex.VY] = _double(s, 10)
        row[AgentIndex.LENGTH] = _double(s, 5)
        row[AgentIndex.WIDTH] = _double(s, 6)
        rows.append(row)
        times.append(int(t))
    if not rows:
        return track_id, None
    return track_id, Track(track_id, cls, np.array(times, dtype=np.int64), np.stack(rows))


def _scenario(path: Path, index: int, payload: bytes) -> ReplayScenario:
    where = f"{path}: record {index}"
    try:
        top = decode_fields(payload)
    except ValueError as exc:
        raise ValueError(f"{where}: not a Scenario protobuf ({exc})") from exc
    seconds = _repeated_doubles(top, 1)
    if seconds.size == 0:
        raise ValueError(f"{where}: Scenario has no timestamps_seconds (field 1)")
    timestamps = np.round(seconds * 1e9).astype(np.int64)
    if np.any(np.diff(timestamps) <= 0):
        i = int(np.argmax(np.diff(timestamps) <= 0))
        raise ValueError(
            f"{where}: timestamps_seconds go backwards or repeat at step {i + 1} "
            f"({seconds[i]} s then {seconds[i + 1]} s)"
        )
    current = _int(top, 10)
    sdc_index = _int(top, 6, -1)
    all_ids: list[int] = []
    tracks: list[Track] = []
    ego: Track | None = None
    for k, f in enumerate(top.get(2, [])):
        tid, track = _track(where, decode_fields(_bytes(f)), timestamps)
        all_ids.append(tid)
        if track is None:
            continue
        if k == sdc_index:
            ego = track
        else:
            tracks.append(track)
    to_predict = []
    for f in top.get(11, []):
        k = _int(decode_fields(_bytes(f)), 1)
        if not 0 <= k < len(all_ids):
            raise ValueError(f"{where}: tracks_to_predict index {k} out of {len(all_ids)} tracks")
        to_predict.append(all_ids[k])
    lanes = []
    for f in top.get(8, []):
        feature = decode_fields(_bytes(f))
        if 3 in feature:
            rec = _lane_record(_int(feature, 1), decode_fields(_bytes(feature[3][-1])))
            if rec is not None:
                lanes.append(rec)
    scenario_id = _bytes(top[5][-1]).decode("utf-8") if 5 in top else f"{path.stem}-{index}"
    try:
        road_map = LaneGraphMap(scenario_id, lanes, source=f"{path}#{index}")
    except MapError as exc:
        raise ValueError(f"{where}: {exc}") from exc
    step = round(float(np.median(np.diff(seconds))), 3) if seconds.size > 1 else 0.1
    protocol = ReplayProtocol(
        name="womd-motion",
        step_seconds=step,
        current_index=current,
        predicted_steps=max(len(timestamps) - current - 1, 1),
        scored_track_ids=tuple(to_predict),
        focal_track_ids=tuple(to_predict),
        horizons_s=WOMD_HORIZONS_S,
    )
    return ReplayScenario(
        name=scenario_id,
        source_format="womd",
        path=path,
        timestamps_ns=timestamps,
        tracks=tuple(tracks),
        ego_track=ego,
        road_map=road_map,
        protocol=protocol,
    )


def load_womd_scenario(path: Path | str, index: int = 0) -> ReplayScenario:
    """Scenario number ``index`` of a WOMD TFRecord file (see the module docstring)."""
    p = Path(path)
    for k, payload in enumerate(read_tfrecords(p)):
        if k == index:
            return _scenario(p, k, payload)
    raise ValueError(f"{p}: has no record {index}")
