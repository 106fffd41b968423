"""The learned stack: sensors → model → planner → controller, never ground truth.

One planning cycle (:meth:`LearnedStack.step`, at ``replan_period``):

1. **Inputs**: the camera images and lidar sweeps of the frame become the model's sample fields
   exactly as ``kaido dataset build`` writes them (:func:`frame_inputs`): images resized to the
   spec's size with the scaled intrinsics, lidar points in the ego frame inside the grid,
   subsampled and rounded to float16; the ego's speed, acceleration, yaw rate and the map's
   speed limit; the route ahead; the ego's own past poses (odometry).
2. **Model** (:class:`~kaido.world_model.model.KaidoModel`, temporal memory carried from the
   previous cycle): detections, K-mode forecasts of the detected agents, the traffic-light state
   ahead, the imitation prior, and the backbone state for imagination.
3. **Planner input**: the detected agents with their forecasts (interpolated onto the planner's
   10 Hz grid, moved to the world frame); the world model's imagined occupancy under the
   imitation prior's actions as the planner's occupancy forecast; the route as reference with the
   map's drivable area; stop lines of the traffic light ahead when the model sees it red (or
   yellow and stoppable); yield stops before detected pedestrians about to cross.
4. **Imagination re-scoring**: the planner's ``rescore_top_k`` best candidates are imagined by the
   world model under their own actions; a candidate whose footprint overlaps imagined occupancy
   has its score scaled down by ``exp(-imagination_weight * overlap)``; the best re-scored
   candidate is tracked by the controller through the safety envelope.

What the stack sees: sensors, ego odometry, the route and the HD map (lanes, drivable area,
speed limits, where traffic lights and their stop lines are). It never sees other agents or the
colour of a light except through the model.

The model is either the eager :class:`~kaido.world_model.model.KaidoModel` or an
:class:`~kaido.stack.export.ExportedModel` (``kaido export``): ``model.encode`` +
``model._heads`` map to ``ExportedModel.run``, ``model.world_model.imagine`` to
``ExportedModel.imagine`` and ``model.cfg.world_model.steps`` to ``imagined_steps``. With an
export, this module imports no model class (``kaido.world_model``, ``kaido.perception``).

As a planning core of the fixed-rate runtime (:mod:`kaido.stack.runtime`) the stack runs one
planning cycle with :meth:`LearnedStack.plan`, reporting the end of each stage to a ``lap``
callback, and leaves control to the runtime.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import numpy.typing as npt
import torch

from kaido.logs.dataset import actions_from_trajectory, route_points
from kaido.logs.sample import (
    BoxField,
    DetectionClass,
    EgoFeature,
    SampleSpec,
    TrafficLightClass,
)
from kaido.planning.planner import PlannerSettings
from kaido.planning.types import (
    OccupancyForecast,
    PlannerConfig,
    PlannerInput,
    PlannerOutput,
    ReferencePath,
    TrajIndex,
)
from kaido.scene.agents import AgentClass, AgentState, Control, EgoState
from kaido.scene.forecast import ModeIndex, PredictedAgents
from kaido.scene.frame import Frame, GroundTruth, TrafficLightColor, TrafficLightState
from kaido.scene.geometry import Box3D, wrap_angle
from kaido.scene.road_map import RoadMap
from kaido.scene.route_planner import RoutePlan
from kaido.scene.sensors import SensorRig
from kaido.scene.vehicle import VehicleProfile
from kaido.stack.expert import ExpertConfig, PrivilegedExpert, first_crossing
from kaido.stack.export import ExportedModel

if TYPE_CHECKING:
    from kaido.world_model.model import KaidoModel

FloatArray = npt.NDArray[np.float64]

_DETECTION_TO_AGENT = {
    DetectionClass.VEHICLE: AgentClass.VEHICLE,
    DetectionClass.PEDESTRIAN: AgentClass.PEDESTRIAN,
    DetectionClass.CYCLIST: AgentClass.CYCLIST,
}
_LIGHT_TO_COLOR = {
    TrafficLightClass.GREEN: TrafficLightColor.GREEN,
    TrafficLightClass.YELLOW: TrafficLightColor.YELLOW,
    TrafficLightClass.RED: TrafficLightColor.RED,
}
_DEFAULT_HEIGHT = {AgentClass.VEHICLE: 1.5, AgentClass.PEDESTRIAN: 1.8, AgentClass.CYCLIST: 1.7}


@dataclass(frozen=True)
class LearnedConfig:
    """How the learned stack turns model outputs into planner input."""

    replan_period: float = 0.1
    """[s] between planning cycles."""
    rescore_top_k: int = 4
    """Best planner candidates re-scored by world-model imagination (0: off)."""
    imagination_weight: float = 4.0
    """Score factor ``exp(-weight * overlap)``, overlap = mean imagined occupancy probability
    under the candidate's footprint over the imagined horizon."""
    occupancy_forecast: bool = True
    """Give the planner the occupancy imagined under the imitation prior's actions."""
    light_range: float = 50.0
    """[m] the traffic light the model reports is the first whose stop line crosses the route
    within this distance ahead (the dataset's label uses the same rule)."""
    threads: int = 0
    """torch intra-op threads (0: leave torch's default)."""
    lidar_seed: int = 0
    """Seed of the lidar subsample (as the dataset's)."""
    min_agent_score: tuple[float, ...] = (0.3, 0.4, 0.4)
    """Detection score (the centre heatmap's peak) an agent needs to reach the planner, per
    :class:`~kaido.logs.sample.DetectionClass` (vehicle, pedestrian, cyclist). The model decodes
    detections from 0.1 up, which suits the AP metric; the planner needs precision, since every
    phantom pedestrian is a yield stop. The defaults maximise F1 per class on the shipped tiny
    model's validation split (precision / recall: vehicles 0.31 / 0.66 at 0.1, 0.77 / 0.60 at
    0.3; pedestrians 0.10 / 0.73 at 0.1, 0.55 / 0.42 at 0.4)."""

    def __post_init__(self) -> None:
        if not (self.replan_period > 0 and math.isfinite(self.replan_period)):
            raise ValueError(f"LearnedConfig.replan_period must be > 0, got {self.replan_period}")
        if len(self.min_agent_score) != len(DetectionClass) or not all(
            0.0 <= v < 1.0 for v in self.min_agent_score
        ):
            raise ValueError(
                f"LearnedConfig.min_agent_score: expected {len(DetectionClass)} scores in [0, 1) "
                f"(vehicle, pedestrian, cyclist), got {self.min_agent_score!r}"
            )
        if self.rescore_top_k < 0:
            raise ValueError(f"LearnedConfig.rescore_top_k must be >= 0, got {self.rescore_top_k}")


# -- inputs ---------------------------------------------------------------------------------------


def frame_inputs(
    frame: Frame,
    rig: SensorRig,
    spec: SampleSpec,
    rng: np.random.Generator,
) -> dict[str, npt.NDArray[Any]]:
    """The sensor fields of one sample (``camera_*``, ``lidar_*``) from a live frame, as
    ``kaido dataset build`` makes them from a log (no leading batch axis)."""
    h, w = spec.image_hw
    c = len(spec.cameras)
    images = np.zeros((c, 3, h, w), np.uint8)
    intrinsics = np.tile(np.eye(3, dtype=np.float32), (c, 1, 1))
    to_ego = np.tile(np.eye(4, dtype=np.float32), (c, 1, 1))
    mask = np.zeros(c, bool)
    for ci, name in enumerate(spec.cameras):
        if name not in rig.camera_names:
            continue
        cam = rig.camera(name)
        intrinsics[ci] = np.diag([w / cam.width, h / cam.height, 1.0]) @ cam.intrinsic_matrix()
        to_ego[ci] = cam.optical_to_ego().as_matrix()
        image = frame.images.get(name)
        if image is None or not np.all(np.isfinite(image.rgb.shape)):
            continue
        rgb = image.rgb
        small = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        images[ci] = np.transpose(small, (2, 0, 1))
        mask[ci] = True
        if (rgb.shape[1], rgb.shape[0]) != (cam.width, cam.height):
            intrinsics[ci] = np.diag([w / rgb.shape[1], h / rgb.shape[0], 1.0]) @ (
                cam.intrinsic_matrix()
            )
    parts = []
    for name, sweep in frame.lidar.items():
        if name not in rig.lidar_names:
            continue
        pts = np.asarray(sweep.points, dtype=np.float64)
        matrix = rig.lidar(name).extrinsics.as_matrix()
        xyz = pts[:, :3] @ matrix[:3, :3].T + matrix[:3, 3]
        parts.append(np.concatenate([xyz, pts[:, 3:4]], axis=1))
    points = np.concatenate(parts) if parts else np.zeros((0, 4))
    points = points[np.all(np.isfinite(points), axis=1)]
    x_lo, x_hi = spec.grid_x_range
    y_lo, y_hi = spec.grid_y_range
    inside = (
        (points[:, 0] >= x_lo)
        & (points[:, 0] < x_hi)
        & (points[:, 1] >= y_lo)
        & (points[:, 1] < y_hi)
    )
    points = points[inside]
    if len(points) > spec.max_lidar_points:
        pick = np.sort(rng.choice(len(points), spec.max_lidar_points, replace=False))
        points = points[pick]
    lidar = np.zeros((spec.max_lidar_points, 4), np.float16)
    lidar[: len(points)] = points.astype(np.float16)
    return {
        "camera_images": images,
        "camera_intrinsics": intrinsics,
        "camera_to_ego": to_ego,
        "camera_mask": mask,
        "lidar_points": lidar,
        "lidar_count": np.asarray(len(points), np.int32),
    }


def _interpolate_poses(
    history: deque[tuple[float, FloatArray]], times: FloatArray, speed: float
) -> FloatArray:
    """World poses ``(len(times), 3)`` at absolute ``times`` from the odometry ``history``;
    before the first entry, back along the first pose's heading at ``speed``."""
    t = np.array([h[0] for h in history])
    poses = np.array([h[1] for h in history])
    out = np.zeros((len(times), 3))
    yaw = np.unwrap(poses[:, 2])
    for j, when in enumerate(times):
        if when <= t[0]:
            back = (t[0] - when) * speed
            out[j] = (
                poses[0, 0] - back * math.cos(poses[0, 2]),
                poses[0, 1] - back * math.sin(poses[0, 2]),
                poses[0, 2],
            )
        else:
            out[j, 0] = np.interp(when, t, poses[:, 0])
            out[j, 1] = np.interp(when, t, poses[:, 1])
            out[j, 2] = np.interp(when, t, yaw)
    return out


def _to_local(pose: FloatArray, world: FloatArray) -> FloatArray:
    """World poses ``(N, 3)`` in the frame of ``pose`` [x, y, yaw]."""
    c, s = math.cos(pose[2]), math.sin(pose[2])
    dx, dy = world[:, 0] - pose[0], world[:, 1] - pose[1]
    out = np.empty_like(world)
    out[:, 0] = c * dx + s * dy
    out[:, 1] = -s * dx + c * dy
    out[:, 2] = wrap_angle(world[:, 2] - pose[2])
    return out


def _to_world(pose: FloatArray, xy: npt.ArrayLike) -> FloatArray:
    p = np.asarray(xy, dtype=np.float64)
    c, s = math.cos(pose[2]), math.sin(pose[2])
    out = np.empty_like(p)
    out[..., 0] = pose[0] + c * p[..., 0] - s * p[..., 1]
    out[..., 1] = pose[1] + s * p[..., 0] + c * p[..., 1]
    return out


# -- the stack ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Perception:
    """What the model made of one frame, in the world frame."""

    agents: tuple[AgentState, ...]
    predicted: PredictedAgents
    light: TrafficLightClass
    prior: FloatArray
    """``(T_f, 3)`` the imitation prior's most probable trajectory (world x, y, yaw)."""
    occupancy: OccupancyForecast | None


class LearnedStack:
    """Sensors → :class:`KaidoModel` → planner → controller (see the module docstring)."""

    def __init__(
        self,
        model: KaidoModel | ExportedModel,
        spec: SampleSpec,
        road_map: RoadMap,
        profile: VehicleProfile,
        rig: SensorRig,
        *,
        settings: PlannerSettings | None = None,
        config: LearnedConfig | None = None,
    ) -> None:
        self.model: Any = model if isinstance(model, ExportedModel) else model.eval()
        self.exported = isinstance(model, ExportedModel)
        """Whether the model is an export (``ExportedModel``) rather than the eager model."""
        self.spec = spec
        self.rig = rig
        self.road_map = road_map
        self.profile = profile
        self.config = config or LearnedConfig()
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        self.core = PrivilegedExpert(
            road_map,
            profile,
            settings=settings,
            config=ExpertConfig(replan_period=self.config.replan_period),
        )
        self.output: PlannerOutput | None = None
        self.perception: Perception | None = None
        self._memory: torch.Tensor | None = None
        self._history: deque[tuple[float, FloatArray]] = deque(maxlen=200)
        self._route_s: float | None = None
        self._plan_time = -math.inf
        self._rng = np.random.default_rng(self.config.lidar_seed)
        self._next_id = 0
        self._lap_start = 0.0
        self.lap_hook: Callable[[str], None] | None = None
        """Called with the stage's name at the end of every timed stage (the runtime's lap)."""
        self.timings: dict[str, float] = {}
        """[ms] per stage of the last planning cycle: inputs, perception (encoders, fusion,
        backbone), prediction (detection decoding, forecasts, prior, light), world_model
        (imagined occupancy and re-scoring), planning, control."""

    @property
    def route(self) -> RoutePlan | None:
        return self.core.route

    @property
    def planner_config(self) -> PlannerConfig:
        config: PlannerConfig = self.core.planner.settings.planner
        return config

    def reference(self, ego: EgoState) -> ReferencePath | None:
        """The route's reference around ``ego`` (for the runtime's stop in lane)."""
        return self.core.reference(ego)[0]

    # -- the model, eager or exported ----------------------------------------------------------

    @property
    def imagined_steps(self) -> int:
        """T_o: the steps one imagination rollout takes."""
        if self.exported:
            return int(self.model.imagined_steps)
        return int(self.model.cfg.world_model.steps)

    def _run_model(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], Any]:
        """``(outputs, backbone state)`` of one frame, the temporal memory carried."""
        if self.exported:
            outputs, state = self.model.run(batch, self._memory)
            return outputs, state
        fused, state = self.model.encode(batch, self._memory)
        self._lap("perception", self._lap_start)
        outputs = self.model._heads(batch, fused, state, segmentation=False)
        return outputs, state

    def _imagine(self, state: Any, actions: torch.Tensor) -> torch.Tensor:
        """Imagined occupancy logits ``(K, T_o, H, W)`` under ``actions (K, T_o, 2)``."""
        logits: torch.Tensor = (
            self.model.imagine(state, actions)
            if self.exported
            else (self.model.world_model.imagine(state, actions))
        )
        return logits

    def reset(self, route: RoutePlan) -> None:
        self.core.reset(route)
        self.output = None
        self.perception = None
        self._memory = None
        self._history.clear()
        self._route_s = None
        self._plan_time = -math.inf

    # -- model inputs ------------------------------------------------------------------------

    def batch(self, frame: Frame, time_s: float) -> dict[str, torch.Tensor]:
        """The model's batch (B = 1) for ``frame`` at ``time_s``."""
        route = self.core.route
        assert route is not None
        spec = self.spec
        ego = frame.ego
        pose = ego.pose.as_array()
        fields = frame_inputs(frame, self.rig, spec, self._rng)
        k = self.core._progress(ego)
        state = np.zeros(len(EgoFeature), np.float32)
        heading = np.array([math.cos(pose[2]), math.sin(pose[2])])
        state[EgoFeature.SPEED] = ego.speed
        state[EgoFeature.ACCEL] = float(np.dot(ego.acceleration, heading))
        state[EgoFeature.YAW_RATE] = ego.yaw_rate
        state[EgoFeature.SPEED_LIMIT] = float(route.speed_limits[k])
        points, self._route_s = route_points(
            route.path[:, :2], pose, spec.route_points, spec.route_spacing, self._route_s
        )
        past_times = time_s - spec.step_seconds * np.arange(
            spec.past_steps, 0, -1, dtype=np.float64
        )
        past = _to_local(pose, _interpolate_poses(self._history, past_times, max(ego.speed, 0.0)))
        fields.update(
            ego_state=state,
            route=points.astype(np.float32),
            ego_past=past.astype(np.float32),
        )
        return {
            name: torch.from_numpy(np.ascontiguousarray(value))[None]
            for name, value in fields.items()
        }

    # -- perception → planner input ----------------------------------------------------------

    def _predicted(
        self, pose: FloatArray, outputs: dict[str, torch.Tensor], timestamp_ns: int
    ) -> tuple[tuple[AgentState, ...], PredictedAgents]:
        times = self.core.planner.settings.planner.times
        mask = outputs["agent_mask"][0].numpy().copy()
        mask &= self._confident(outputs)
        boxes = outputs["agent_boxes"][0].numpy().astype(np.float64)[mask]
        classes = outputs["agent_class"][0].numpy()[mask]
        modes = outputs["forecast_modes"][0].numpy().astype(np.float64)[mask]  # (A, K, T_f, 2)
        probs = torch.softmax(outputs["forecast_logits"][0].float(), -1).numpy()[mask]
        if len(boxes) == 0:
            return (), PredictedAgents.empty(len(times))
        a, k, t_f, _ = modes.shape
        step_times = self.spec.step_seconds * np.arange(0, t_f + 1)
        agents: list[AgentState] = []
        out = np.zeros((a, k, len(times), len(ModeIndex)))
        yaw_world = wrap_angle(boxes[:, BoxField.YAW] + pose[2])
        centre = _to_world(pose, boxes[:, [BoxField.X, BoxField.Y]])
        velocity = _to_world(np.array([0.0, 0.0, pose[2]]), boxes[:, [BoxField.VX, BoxField.VY]])
        for i in range(a):
            track = np.concatenate([np.repeat(boxes[i : i + 1, :2], k, 0)[:, None], modes[i]], 1)
            world = _to_world(pose, track)  # (K, T_f + 1, 2)
            for m in range(k):
                x = np.interp(times, step_times, world[m, :, 0])
                y = np.interp(times, step_times, world[m, :, 1])
                dx, dy = np.gradient(x, times), np.gradient(y, times)
                speed = np.hypot(dx, dy)
                yaw = np.where(speed > 0.5, np.arctan2(dy, dx), yaw_world[i])
                out[i, m, :, ModeIndex.X] = x
                out[i, m, :, ModeIndex.Y] = y
                out[i, m, :, ModeIndex.YAW] = yaw
                out[i, m, :, ModeIndex.SPEED] = speed
            cls = _DETECTION_TO_AGENT.get(DetectionClass(int(classes[i])), AgentClass.UNKNOWN)
            length = float(max(boxes[i, BoxField.LENGTH], 0.2))
            width = float(max(boxes[i, BoxField.WIDTH], 0.2))
            agents.append(
                AgentState(
                    track_id=self._next_id + i,
                    agent_class=cls,
                    box=Box3D(
                        x=float(centre[i, 0]),
                        y=float(centre[i, 1]),
                        z=0.5 * _DEFAULT_HEIGHT.get(cls, 1.5),
                        yaw=float(yaw_world[i]),
                        length=length,
                        width=width,
                        height=_DEFAULT_HEIGHT.get(cls, 1.5),
                    ),
                    velocity=(float(velocity[i, 0]), float(velocity[i, 1])),
                    timestamp_ns=timestamp_ns,
                )
            )
        self._next_id += a
        predicted = PredictedAgents(
            ids=np.array([s.track_id for s in agents], np.int64),
            classes=np.array([int(s.agent_class) for s in agents], np.int64),
            sizes=np.array([[s.box.length, s.box.width] for s in agents]),
            modes=out,
            probabilities=probs / probs.sum(axis=1, keepdims=True),
        )
        return tuple(agents), predicted

    def _confident(self, outputs: dict[str, torch.Tensor]) -> npt.NDArray[np.bool_]:
        """``(M,)`` whether each agent query's detection score reaches its class's
        :attr:`LearnedConfig.min_agent_score`. The score is the peak of the class's centre
        heatmap (sigmoid) in the 3 x 3 cells around the box centre, which holds the cell the
        detection was decoded from (its sub-cell offset is under one cell)."""
        heat = torch.sigmoid(outputs["detection_heatmap"][0].float()).numpy()  # (K, h, w)
        boxes = outputs["agent_boxes"][0].numpy().astype(np.float64)
        classes = outputs["agent_class"][0].numpy()
        grid = self.spec.grid
        h = heat.shape[1]
        stride = grid.height / h
        rows = np.floor((grid.origin_row - boxes[:, BoxField.X] / grid.resolution) / stride)
        cols = np.floor((grid.origin_col - boxes[:, BoxField.Y] / grid.resolution) / stride)
        keep = np.zeros(len(boxes), dtype=np.bool_)
        for i in range(len(boxes)):
            c = int(classes[i])
            if not 0 <= c < len(self.config.min_agent_score) or not (
                math.isfinite(rows[i]) and math.isfinite(cols[i])
            ):
                continue
            r0, c0 = int(rows[i]), int(cols[i])
            window = heat[c, max(r0 - 1, 0) : r0 + 2, max(c0 - 1, 0) : c0 + 2]
            keep[i] = window.size > 0 and float(window.max()) >= self.config.min_agent_score[c]
        return keep

    def _occupancy(self, pose: FloatArray, logits: torch.Tensor) -> OccupancyForecast:
        """Imagined occupancy logits ``(T_o, H, W)`` (0.5 s apart) → the planner's forecast on
        its own time grid (nearest imagined layer up to the imagined horizon, 0 after)."""
        prob = torch.sigmoid(logits.float()).numpy().astype(np.float64)
        times = self.core.planner.settings.planner.times
        step = self.spec.step_seconds
        layers = np.zeros((len(times), *prob.shape[1:]))
        for j, t in enumerate(times):
            index = int(round(t / step)) - 1
            if index < len(prob):
                layers[j] = prob[max(index, 0)]
        grid = self.spec.grid
        return OccupancyForecast(
            probability=layers,
            pose=pose,
            resolution=float(grid.resolution),
            origin_row=grid.origin_row,
            origin_col=grid.origin_col,
        )

    def _light_stops(
        self, ego: EgoState, lights: tuple[TrafficLightState, ...], light: TrafficLightClass
    ) -> tuple[TrafficLightState, ...]:
        """The map's lights, coloured by what the model sees: the first light ahead on the
        route (within ``light_range``) gets the model's colour, every other light none."""
        route = self.core.route
        assert route is not None
        if light not in _LIGHT_TO_COLOR:
            return ()
        k = self.core._route_index
        s_ego = float(route.s[k])
        hi = int(np.searchsorted(route.s, s_ego + self.config.light_range)) + 1
        path = route.path[k : min(hi, len(route.s)), :2]
        if len(path) < 2:
            return ()
        best: tuple[float, TrafficLightState] | None = None
        for state in lights:
            if state.stop_line is None:
                continue
            a, b = np.asarray(state.stop_line, dtype=np.float64)
            crossing = first_crossing(path, a, b)
            if crossing is None:
                continue
            j, t = crossing
            if best is None or j + t < best[0]:
                best = (j + t, state)
        if best is None:
            return ()
        return (replace(best[1], color=_LIGHT_TO_COLOR[light]),)

    def _lap(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + 1e3 * (now - since)
        self._lap_start = now
        if self.lap_hook is not None:
            self.lap_hook(stage)
        return now

    def perceive(
        self, frame: Frame, time_s: float, map_lights: tuple[TrafficLightState, ...] = ()
    ) -> tuple[Perception, Any]:
        """Run the model on ``frame``; ``(Perception, backbone state)``."""
        ego = frame.ego
        pose = ego.pose.as_array()
        clock = time.perf_counter()
        batch = self.batch(frame, time_s)
        clock = self._lap("inputs", clock)
        with torch.no_grad():
            outputs, state = self._run_model(batch)
            if self.exported:
                self._lap("perception", clock)
            clock = self._lap_start
        self._memory = outputs["memory"]
        timestamp_ns = int(round(time_s * 1e9))
        agents, predicted = self._predicted(pose, outputs, timestamp_ns)
        light = TrafficLightClass.NONE
        if "light_logits" in outputs:
            light = TrafficLightClass(int(outputs["light_logits"][0].argmax()))
        best = int(outputs["plan_logits"][0].argmax())
        prior_local = outputs["plan_trajectories"][0, best].numpy().astype(np.float64)
        prior = np.empty_like(prior_local)
        prior[:, :2] = _to_world(pose, prior_local[:, :2])
        prior[:, 2] = wrap_angle(prior_local[:, 2] + pose[2])
        clock = self._lap("prediction", clock)
        occupancy = None
        if self.config.occupancy_forecast:
            speeds = np.concatenate(
                [
                    [ego.speed],
                    np.hypot(*np.diff(np.vstack([[0, 0], prior_local[:, :2]]), axis=0).T)
                    / self.spec.step_seconds,
                ]
            )
            poses = np.vstack([[0.0, 0.0, 0.0], prior_local])
            actions = actions_from_trajectory(poses, speeds, self.spec.step_seconds)
            steps = self.imagined_steps
            with torch.no_grad():
                logits = self._imagine(
                    state, torch.from_numpy(actions[:steps].astype(np.float32))[None]
                )
            occupancy = self._occupancy(pose, logits[0])
        self._lap("world_model", clock)
        perception = Perception(
            agents=agents, predicted=predicted, light=light, prior=prior, occupancy=occupancy
        )
        self.perception = perception
        return perception, state

    def planner_input(
        self,
        ego: EgoState,
        perception: Perception,
        map_lights: tuple[TrafficLightState, ...],
        timestamp_ns: int,
    ) -> PlannerInput:
        reference, i0, i1 = self.core.reference(ego)
        seen = GroundTruth(
            agents=perception.agents,
            traffic_lights=self._light_stops(ego, map_lights, perception.light),
        )
        return PlannerInput(
            timestamp_ns=timestamp_ns,
            ego=ego,
            reference=reference,
            agents=perception.predicted,
            drivable=self.core.drivable(ego),
            occupancy=perception.occupancy,
            stops=self.core.stops(ego, seen, i0, i1) + self.core.yields(ego, seen, i0, i1),
            ego_length=self.profile.length,
            ego_width=self.profile.width,
            rear_axle_to_center=self.profile.rear_axle_to_center,
        )

    def _rescore(self, output: PlannerOutput, state: Any, ego: EgoState) -> PlannerOutput:
        """Imagine the top candidates under their own actions; down-weight overlaps."""
        k = self.config.rescore_top_k
        if k == 0 or output.candidates is None or output.scores is None or output.fallback_reason:
            return output
        scores = np.asarray(output.scores, dtype=np.float64)
        top = np.argsort(-scores)[:k]
        top = top[scores[top] > 0]
        if len(top) == 0:
            return output
        pose = ego.pose.as_array()
        step = self.spec.step_seconds
        steps = self.imagined_steps
        times = self.core.planner.settings.planner.times
        dt = float(times[1] - times[0])
        stride = int(round(step / dt))
        actions = []
        footprints = []
        for index in top:
            traj = output.candidates[index][::stride][: steps + 1]
            local = _to_local(pose, traj[:, [TrajIndex.X, TrajIndex.Y, TrajIndex.YAW]])
            actions.append(actions_from_trajectory(local, traj[:, TrajIndex.SPEED], step))
            footprints.append(local[1:])
        with torch.no_grad():
            logits = self._imagine(
                state, torch.from_numpy(np.stack(actions).astype(np.float32)[:, :steps])
            )
        prob = torch.sigmoid(logits.float()).numpy()
        overlap = np.array(
            [
                _footprint_mean(prob[j], footprints[j], self.spec, self.profile)
                for j in range(len(top))
            ]
        )
        rescored = scores.copy()
        rescored[top] = scores[top] * np.exp(-self.config.imagination_weight * overlap)
        best = int(top[np.argmax(rescored[top])])
        if best == output.chosen:
            return output
        return replace(
            output,
            trajectory=output.candidates[best],
            chosen=best,
            scores=rescored,
            costs={**dict(output.costs), "imagined_overlap": float(overlap[list(top).index(best)])},
        )

    def _cycle(
        self, frame: Frame, time_s: float, map_lights: tuple[TrafficLightState, ...]
    ) -> PlannerOutput:
        """One planning cycle: model, planner input, planner, imagination re-scoring."""
        ego = frame.ego
        self.timings = {}
        perception, state = self.perceive(frame, time_s, map_lights)
        clock = time.perf_counter()
        timestamp_ns = int(round(time_s * 1e9))
        inp = self.planner_input(ego, perception, map_lights, timestamp_ns)
        output = self.core.planner.plan(inp)
        clock = self._lap("planning", clock)
        self.output = self._rescore(output, state, ego)
        self._lap("world_model", clock)
        self._plan_time = time_s
        return self.output

    def plan(
        self,
        frame: Frame,
        time_s: float,
        map_lights: tuple[TrafficLightState, ...] = (),
        lap: Callable[[str], None] | None = None,
    ) -> PlannerOutput:
        """One planning cycle on ``frame`` at ``time_s`` [s], no control (the runtime's core);
        ``lap(stage)`` is called at the end of each stage."""
        if self.core.route is None:
            raise RuntimeError("LearnedStack.plan: call reset(route) first")
        self._history.append((time_s, frame.ego.pose.as_array()))
        self.lap_hook = lap
        try:
            return self._cycle(frame, time_s, map_lights)
        finally:
            self.lap_hook = None

    def step(
        self,
        frame: Frame,
        time_s: float,
        dt: float,
        map_lights: tuple[TrafficLightState, ...] = (),
    ) -> tuple[Control, PlannerOutput | None]:
        """Replan when due (model + planner), then the control for this step."""
        if self.core.route is None:
            raise RuntimeError("LearnedStack.step: call reset(route) first")
        ego = frame.ego
        self._history.append((time_s, ego.pose.as_array()))
        if self.output is None or time_s - self._plan_time >= self.config.replan_period - 1e-9:
            self._cycle(frame, time_s, map_lights)
        assert self.output is not None
        clock = time.perf_counter()
        control, _debug = self.core.controller.command(
            ego, self.output.trajectory, time_s - self._plan_time, dt
        )
        self._lap("control", clock)
        return control, self.output


def _footprint_mean(
    prob: npt.NDArray[np.float32], poses: FloatArray, spec: SampleSpec, profile: VehicleProfile
) -> float:
    """Mean probability ``prob (T, H, W)`` over the ego box (3 × 3 sample points) at the
    local ``poses (T, 3)`` (rear-axle poses in the current ego frame)."""
    grid = spec.grid
    res = float(grid.resolution)
    along = np.linspace(-profile.rear_overhang, profile.length - profile.rear_overhang, 3)
    across = np.linspace(-0.5 * profile.width, 0.5 * profile.width, 3)
    total, count = 0.0, 0
    for t in range(min(len(prob), len(poses))):
        x, y, yaw = poses[t]
        c, s = math.cos(yaw), math.sin(yaw)
        for u in along:
            for v in across:
                px, py = x + c * u - s * v, y + s * u + c * v
                r = int(math.floor(grid.origin_row - px / res))
                col = int(math.floor(grid.origin_col - py / res))
                count += 1
                if 0 <= r < prob.shape[1] and 0 <= col < prob.shape[2]:
                    total += float(prob[t, r, col])
    return total / max(count, 1)
