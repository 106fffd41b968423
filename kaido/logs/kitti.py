"""KITTI object-detection frames (velodyne sweep, left colour image, calibration, labels) as kaido
:class:`~kaido.scene.frame.Frame` objects.

Layout read (the KITTI 3D object benchmark, ``training`` split)::

    <root>/velodyne/<index>.bin    float32 (N, 4): x, y, z [m], reflectance, velodyne frame
    <root>/image_2/<index>.png     left colour camera, rectified
    <root>/calib/<index>.txt       "KEY: numbers" lines; P2 (3x4), R0_rect (3x3),
                                   Tr_velo_to_cam (3x4) are used
    <root>/label_2/<index>.txt     one object per line (type, truncated, occluded, alpha,
                                   2D box, h w l, x y z, rotation_y)

Frames
------
* kaido ego frame: the KITTI velodyne frame (x forward, y left, z up) with its origin moved down
  to the ground under the lidar: ``p_ego = p_velo + (0, 0, lidar_height)``. KITTI's recording
  car carries its Velodyne HDL-64E 1.73 m above the ground (Geiger et al., "Vision meets
  Robotics: The KITTI Dataset", IJRR 2013, sensor setup), the default ``lidar_height``; the
  road returns a few metres ahead of the car lie within a few centimetres of ego ``z = 0``
  (checked in the tests). This origin is *not* kaido's usual rear-axle point: KITTI's calibration
  files do not give the axle's position, so the origin stays directly under the lidar.
* The ego pose is the identity: a KITTI object frame is a single snapshot with no odometry, so the
  world frame of the ground truth is the ego frame, and the ego's velocity, acceleration, yaw rate
  and steering angle are unknown (NaN). The timestamps are 0 (the benchmark has none).
* Lidar points stay in the velodyne body frame, exactly as stored; the rig's lidar ``velodyne``
  sits at ``(0, 0, lidar_height)`` in the ego frame.
* The camera ``image_2`` is the rectified left colour camera: ``P2 = K [I | t2]`` with ``K`` its
  pinhole intrinsics and ``t2`` its offset from the rectified reference camera, so the ego to
  optical transform is ``T(t2) · R0_rect · Tr_velo_to_cam · T(0, 0, -lidar_height)``.

Pixels: KITTI's calibration and 2D boxes put pixel *centres* at integer coordinates; kaido's
camera model puts the image over ``[0, W) x [0, H)`` with the centre of pixel ``(col, row)`` at
``(col + 0.5, row + 0.5)`` (:mod:`kaido.scene.sensors`). Both the principal point and the 2D
label boxes are therefore shifted by ``+0.5`` px on reading, so ``CameraSpec.project`` equals
KITTI's ``P2 · R0_rect · Tr_velo_to_cam`` projection plus 0.5 px.

Labels: ``Car``, ``Van``, ``Truck``, ``Tram`` → ``VEHICLE``; ``Pedestrian``, ``Person_sitting`` →
``PEDESTRIAN``; ``Cyclist`` → ``CYCLIST``; ``Misc`` → ``UNKNOWN``; ``DontCare`` regions are
dropped. A label's 3D box (bottom-centre location, ``rotation_y`` about the rectified camera's
down axis) becomes a yaw-only :class:`~kaido.scene.geometry.Box3D` in the ego frame; the label
``i`` of :attr:`KittiFrame.labels` is the ground-truth agent with ``track_id == i`` (velocity
unknown, NaN).

Errors: a missing file, a missing or malformed calibration key, or a malformed label line raises
``ValueError`` naming the file (and the key or line).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from kaido.scene.agents import AgentClass, AgentState, EgoState
from kaido.scene.frame import CameraImage, Frame, GroundTruth, LidarIndex, LidarSweep
from kaido.scene.geometry import SE2, SE3, Box3D
from kaido.scene.sensors import CameraSpec, LidarSpec, SensorRig

__all__ = [
    "KITTI_CAMERA",
    "KITTI_CLASSES",
    "KITTI_LIDAR",
    "KITTI_LIDAR_HEIGHT",
    "KITTI_PIXEL_OFFSET",
    "ImageBoxIndex",
    "KittiCalibration",
    "KittiFrame",
    "KittiLabel",
    "kitti_lidar_spec",
    "read_kitti_calibration",
    "read_kitti_frame",
    "read_kitti_labels",
]

#: Height of KITTI's Velodyne above the ground [m] (KITTI sensor setup, Geiger et al. 2013).
KITTI_LIDAR_HEIGHT = 1.73
#: Name of the camera (KITTI's rectified left colour camera) in the rig.
KITTI_CAMERA = "image_2"
#: Name of the lidar in the rig.
KITTI_LIDAR = "velodyne"
#: kaido pixel coordinate minus KITTI pixel coordinate [px] (pixel centres at +0.5 in kaido).
KITTI_PIXEL_OFFSET = 0.5

#: KITTI object type → kaido class; ``DontCare`` is absent (such lines are dropped).
KITTI_CLASSES: dict[str, AgentClass] = {
    "Car": AgentClass.VEHICLE,
    "Van": AgentClass.VEHICLE,
    "Truck": AgentClass.VEHICLE,
    "Tram": AgentClass.VEHICLE,
    "Pedestrian": AgentClass.PEDESTRIAN,
    "Person_sitting": AgentClass.PEDESTRIAN,
    "Cyclist": AgentClass.CYCLIST,
    "Misc": AgentClass.UNKNOWN,
}
_DONT_CARE = "DontCare"

# Pose of the camera body frame (x forward, y left, z up) in the optical frame (x right, y down,
# z forward): the inverse of the permutation kaido.scene.sensors applies.
_OPTICAL_FROM_BODY = SE3(
    np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]]), np.zeros(3)
)


class ImageBoxIndex(IntEnum):
    """Columns of a packed 2D image box ``(..., 4)`` [px], kaido pixel convention."""

    LEFT = 0
    TOP = 1
    RIGHT = 2
    BOTTOM = 3


class _LabelColumn(IntEnum):
    """Fields of a KITTI label line (after the type name)."""

    TRUNCATED = 0
    OCCLUDED = 1
    ALPHA = 2
    LEFT = 3
    TOP = 4
    RIGHT = 5
    BOTTOM = 6
    HEIGHT = 7
    WIDTH = 8
    LENGTH = 9
    X = 10
    Y = 11
    Z = 12
    ROTATION_Y = 13


_LABEL_FIELDS = len(_LabelColumn)


def kitti_lidar_spec(lidar_height: float = KITTI_LIDAR_HEIGHT) -> LidarSpec:
    """KITTI's Velodyne HDL-64E at ``lidar_height`` [m] above the ego origin.

    Nominal parameters from the KITTI paper: 64 beams, +2° to -24.8° elevation, 120 m range,
    10 Hz, about 1.3 million points per second.
    """
    return LidarSpec(
        name=KITTI_LIDAR,
        extrinsics=SE3(np.eye(3), np.array([0.0, 0.0, float(lidar_height)])),
        channels=64,
        upper_fov=math.radians(2.0),
        lower_fov=math.radians(-24.8),
        range_min=0.0,
        range_max=120.0,
        rotation_frequency=10.0,
        points_per_second=1_300_000,
    )


@dataclass(frozen=True, eq=False)
class KittiCalibration:
    """The calibration matrices of one KITTI frame, as stored (KITTI pixel convention)."""

    path: Path
    """The calibration file."""
    P2: npt.NDArray[np.float64]
    """``(3, 4)`` projection of rectified reference-camera points to image_2 pixels."""
    R0_rect: npt.NDArray[np.float64]
    """``(3, 3)`` rectifying rotation of the reference camera."""
    Tr_velo_to_cam: npt.NDArray[np.float64]
    """``(3, 4)`` velodyne → (unrectified) reference camera, translation in [m]."""

    def __post_init__(self) -> None:
        p2 = np.asarray(self.P2, dtype=np.float64)
        if p2[0, 1] != 0.0 or p2[1, 0] != 0.0 or p2[2, 0] != 0.0 or p2[2, 1] != 0.0:
            raise ValueError(
                f"{self.path}: key 'P2': expected a skew-free pinhole [[fx, 0, cx, .], "
                f"[0, fy, cy, .], [0, 0, 1, .]], got {p2.tolist()}"
            )
        if p2[2, 2] != 1.0 or p2[0, 0] <= 0.0 or p2[1, 1] <= 0.0:
            raise ValueError(
                f"{self.path}: key 'P2': expected P2[2, 2] == 1 and positive focal lengths, "
                f"got {p2.tolist()}"
            )
        for name in ("P2", "R0_rect", "Tr_velo_to_cam"):
            arr = np.array(getattr(self, name), dtype=np.float64)
            arr.flags.writeable = False
            object.__setattr__(self, name, arr)

    @property
    def intrinsics(self) -> npt.NDArray[np.float64]:
        """``(3, 3)`` K of image_2 (KITTI pixel convention), the left block of ``P2``."""
        out: npt.NDArray[np.float64] = self.P2[:, :3].copy()
        return out

    def rect_from_ego(self, lidar_height: float = KITTI_LIDAR_HEIGHT) -> SE3:
        """Ego frame → rectified reference camera (x right, y down, z forward) [m]."""
        rotation = self.R0_rect @ self.Tr_velo_to_cam[:, :3]
        velo_to_rect = self.R0_rect @ self.Tr_velo_to_cam[:, 3]
        ego_origin_in_velo = np.array([0.0, 0.0, -float(lidar_height)])
        try:
            return SE3(rotation, velo_to_rect + rotation @ ego_origin_in_velo)
        except ValueError as exc:
            raise ValueError(
                f"{self.path}: keys 'R0_rect', 'Tr_velo_to_cam': their rotations do not "
                f"compose to a rotation: {exc}"
            ) from exc

    def camera_spec(
        self, width: int, height: int, lidar_height: float = KITTI_LIDAR_HEIGHT
    ) -> CameraSpec:
        """image_2 as a kaido pinhole of ``width x height`` [px] with ego-frame extrinsics."""
        k = self.P2[:, :3]
        t2 = np.linalg.solve(k, self.P2[:, 3])
        rect = self.rect_from_ego(lidar_height)
        rotation = rect.rotation
        translation = rect.translation + t2
        # KITTI's rotations are orthonormal to about 1e-7 only. The camera model inverts its
        # extrinsics with the transpose, so the translation here uses the exact inverse: the
        # model's ego -> optical transform is then (rotation, translation) to rounding, and
        # CameraSpec.project reproduces P2 . R0_rect . Tr_velo_to_cam to floating-point precision.
        origin = np.asarray(-np.linalg.solve(rotation, translation), dtype=np.float64)
        ego_from_optical = SE3(rotation.T, origin)
        extrinsics = ego_from_optical @ _OPTICAL_FROM_BODY
        try:
            return CameraSpec(
                KITTI_CAMERA,
                width,
                height,
                float(k[0, 0]),
                float(k[1, 1]),
                float(k[0, 2]) + KITTI_PIXEL_OFFSET,
                float(k[1, 2]) + KITTI_PIXEL_OFFSET,
                extrinsics,
            )
        except ValueError as exc:
            raise ValueError(f"{self.path}: key 'P2': {exc}") from exc


@dataclass(frozen=True)
class KittiLabel:
    """One labelled object of a KITTI frame (``DontCare`` regions are not labels here)."""

    kitti_type: str
    """KITTI's type name, e.g. ``"Car"``."""
    agent_class: AgentClass
    """kaido class (see the module docstring for the mapping)."""
    truncated: float
    """Fraction of the object outside the image, ``[0, 1]``."""
    occluded: int
    """0 fully visible, 1 partly occluded, 2 largely occluded, 3 unknown."""
    alpha: float
    """Observation angle of the object [rad], ``[-pi, pi]``."""
    bbox: tuple[float, float, float, float]
    """2D box in image_2 ``(left, top, right, bottom)`` [px] (:class:`ImageBoxIndex`), kaido
    pixel convention (KITTI's values + 0.5)."""
    box: Box3D
    """3D box in the ego frame (centre [m], yaw [rad], length, width, height [m])."""


@dataclass(frozen=True, eq=False)
class KittiFrame:
    """One KITTI object frame: the kaido :class:`Frame`, the labels and the raw calibration."""

    index: str
    """Six-digit frame index, e.g. ``"000001"``."""
    frame: Frame
    """Lidar sweep, image, rig (camera ``image_2``, lidar ``velodyne``), identity ego pose, and
    ground truth (one agent per label, ``track_id`` = index into :attr:`labels`) when labels were
    read."""
    labels: tuple[KittiLabel, ...]
    """The frame's labelled objects, in file order, ``DontCare`` dropped."""
    calib: KittiCalibration
    """The calibration matrices as stored."""


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise ValueError(f"{path}: missing KITTI {what} file")
    return path


def read_kitti_calibration(path: str | Path) -> KittiCalibration:
    """Read ``P2``, ``R0_rect`` and ``Tr_velo_to_cam`` from a KITTI object calibration file."""
    p = _require_file(Path(path), "calibration")
    shapes = {"P2": (3, 4), "R0_rect": (3, 3), "Tr_velo_to_cam": (3, 4)}
    values: dict[str, npt.NDArray[np.float64]] = {}
    for number, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, rest = line.partition(":")
        key = key.strip()
        if not sep:
            raise ValueError(f"{p}: line {number}: expected 'KEY: numbers', got {line!r}")
        if key not in shapes:
            continue
        shape = shapes[key]
        try:
            numbers = np.array([float(v) for v in rest.split()], dtype=np.float64)
        except ValueError as exc:
            raise ValueError(f"{p}: key {key!r} (line {number}): not a number: {exc}") from exc
        size = shape[0] * shape[1]
        if numbers.size != size:
            raise ValueError(
                f"{p}: key {key!r} (line {number}): expected {size} numbers, got {numbers.size}"
            )
        if not np.all(np.isfinite(numbers)):
            raise ValueError(f"{p}: key {key!r} (line {number}): non-finite value")
        values[key] = numbers.reshape(shape)
    for key in shapes:
        if key not in values:
            raise ValueError(f"{p}: key {key!r} missing")
    return KittiCalibration(p, values["P2"], values["R0_rect"], values["Tr_velo_to_cam"])


def read_kitti_labels(
    path: str | Path, calib: KittiCalibration, lidar_height: float = KITTI_LIDAR_HEIGHT
) -> tuple[KittiLabel, ...]:
    """Read a KITTI ``label_2`` file; boxes are converted to the ego frame with ``calib``."""
    p = _require_file(Path(path), "label")
    # Exact inverse of KITTI's (orthonormal to ~1e-7 only) rotation, as in camera_spec.
    rect_from_ego = calib.rect_from_ego(lidar_height)
    labels: list[KittiLabel] = []
    for number, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        kitti_type = fields[0]
        where = f"{p}: line {number} ({kitti_type!r})"
        if len(fields) - 1 not in (_LABEL_FIELDS, _LABEL_FIELDS + 1):  # + 1: a score column
            raise ValueError(
                f"{where}: expected {_LABEL_FIELDS} numbers after the type, got {len(fields) - 1}"
            )
        if kitti_type == _DONT_CARE:
            continue
        if kitti_type not in KITTI_CLASSES:
            raise ValueError(
                f"{where}: unknown object type; known types are {[*KITTI_CLASSES, _DONT_CARE]}"
            )
        try:
            v = [float(x) for x in fields[1 : 1 + _LABEL_FIELDS]]
        except ValueError as exc:
            raise ValueError(f"{where}: not a number: {exc}") from exc
        if not all(math.isfinite(x) for x in v):
            raise ValueError(f"{where}: non-finite value in {fields[1:]}")
        h = v[_LabelColumn.HEIGHT]
        w = v[_LabelColumn.WIDTH]
        length = v[_LabelColumn.LENGTH]
        if min(h, w, length) < 0.0:
            raise ValueError(f"{where}: negative dimensions h, w, l = {h}, {w}, {length}")
        # KITTI's location is the bottom centre in rectified camera coordinates (y down).
        centre_rect = np.array(
            [v[_LabelColumn.X], v[_LabelColumn.Y] - 0.5 * h, v[_LabelColumn.Z]], dtype=np.float64
        )
        ry = v[_LabelColumn.ROTATION_Y]
        heading_rect = np.array([math.cos(ry), 0.0, -math.sin(ry)])
        centre = np.linalg.solve(rect_from_ego.rotation, centre_rect - rect_from_ego.translation)
        heading = np.linalg.solve(rect_from_ego.rotation, heading_rect)
        box = Box3D(
            float(centre[0]),
            float(centre[1]),
            float(centre[2]),
            math.atan2(float(heading[1]), float(heading[0])),
            length,
            w,
            h,
        )
        off = KITTI_PIXEL_OFFSET
        labels.append(
            KittiLabel(
                kitti_type=kitti_type,
                agent_class=KITTI_CLASSES[kitti_type],
                truncated=v[_LabelColumn.TRUNCATED],
                occluded=int(v[_LabelColumn.OCCLUDED]),
                alpha=v[_LabelColumn.ALPHA],
                bbox=(
                    v[_LabelColumn.LEFT] + off,
                    v[_LabelColumn.TOP] + off,
                    v[_LabelColumn.RIGHT] + off,
                    v[_LabelColumn.BOTTOM] + off,
                ),
                box=box,
            )
        )
    return tuple(labels)


def _read_velodyne(path: Path) -> npt.NDArray[np.float32]:
    raw = np.fromfile(_require_file(path, "velodyne"), dtype="<f4")
    if raw.size % len(LidarIndex):
        raise ValueError(
            f"{path}: velodyne file holds {raw.size} float32 values, not a multiple of "
            f"{len(LidarIndex)} (x, y, z, reflectance)"
        )
    points: npt.NDArray[np.float32] = raw.astype(np.float32).reshape(-1, len(LidarIndex))
    return points


def _read_image(path: Path) -> npt.NDArray[np.uint8]:
    bgr = cv2.imread(str(_require_file(path, "image")), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{path}: not a readable image")
    rgb: npt.NDArray[np.uint8] = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return rgb


def read_kitti_frame(
    root: str | Path,
    index: int | str,
    *,
    labels: bool = True,
    lidar_height: float = KITTI_LIDAR_HEIGHT,
) -> KittiFrame:
    """Read frame ``index`` (an int or a six-digit string) of a KITTI object split at ``root``.

    ``labels=False`` skips ``label_2`` (for the test split, which has none): the frame then has no
    ground truth. ``lidar_height`` [m] places the ego origin on the ground under the lidar.
    """
    if isinstance(index, bool) or not isinstance(index, int | str):
        raise TypeError(f"index: expected an int or a string, got {index!r}")
    if isinstance(index, int):
        if index < 0:
            raise ValueError(f"index: must be non-negative, got {index}")
        name = f"{index:06d}"
    elif index.isdigit():
        name = index
    else:
        raise ValueError(f"index: expected digits such as '000001', got {index!r}")
    if not math.isfinite(lidar_height) or lidar_height < 0.0:
        raise ValueError(f"lidar_height: expected a finite height >= 0 m, got {lidar_height}")
    base = Path(root)
    calib = read_kitti_calibration(base / "calib" / f"{name}.txt")
    points = _read_velodyne(base / "velodyne" / f"{name}.bin")
    rgb = _read_image(base / "image_2" / f"{name}.png")
    camera = calib.camera_spec(rgb.shape[1], rgb.shape[0], lidar_height)
    rig = SensorRig(cameras=(camera,), lidars=(kitti_lidar_spec(lidar_height),))
    nan = math.nan
    ego = EgoState(0, SE2.identity(), (nan, nan), (nan, nan), nan, nan)
    objects: tuple[KittiLabel, ...] = ()
    ground_truth: GroundTruth | None = None
    if labels:
        objects = read_kitti_labels(base / "label_2" / f"{name}.txt", calib, lidar_height)
        ground_truth = GroundTruth(
            agents=tuple(
                AgentState(i, obj.agent_class, obj.box, (nan, nan), 0)
                for i, obj in enumerate(objects)
            )
        )
    frame = Frame(
        timestamp_ns=0,
        ego=ego,
        images={KITTI_CAMERA: CameraImage(KITTI_CAMERA, 0, rgb)},
        lidar={KITTI_LIDAR: LidarSweep(KITTI_LIDAR, 0, points)},
        rig=rig,
        ground_truth=ground_truth,
    )
    return KittiFrame(index=name, frame=frame, labels=objects, calib=calib)
