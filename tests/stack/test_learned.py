"""The learned stack: model outputs → planner input, and the agent that never sees ground truth."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("carla")

from kaido.logs.sample import BoxField, DetectionClass, SampleSpec  # noqa: E402
from kaido.scene.agents import AgentClass  # noqa: E402
from kaido.scene.forecast import ModeIndex  # noqa: E402
from kaido.scene.frame import GroundTruth  # noqa: E402
from kaido.scene.road_map import RoadMap  # noqa: E402
from kaido.scene.sensors import load_sensor_rig  # noqa: E402
from kaido.scene.town_generator import TownSpec, generate_town  # noqa: E402
from kaido.scene.vehicle import VehicleProfile  # noqa: E402
from kaido.stack.learned import LearnedStack  # noqa: E402
from kaido.world_model.lightning import save_model_checkpoint  # noqa: E402
from kaido.world_model.model import KaidoModel, ModelConfig  # noqa: E402
from kaido.world_model.training import read_experiment  # noqa: E402
from tests.simulation.test_collect import small_rig  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SPEC = SampleSpec(image_hw=(48, 80), max_lidar_points=4096)


def small_model() -> ModelConfig:
    model, _ = read_experiment(REPO / "configs" / "model" / "tiny.yaml")
    model["perception"]["camera"].update(image_height=48, image_width=80)
    model["backbone"].update(layers=1)
    return ModelConfig.from_dict(model)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = KaidoModel(small_model()).eval()
    return save_model_checkpoint(
        model, SPEC.to_dict(), tmp_path_factory.mktemp("learned") / "random.ckpt"
    )


@pytest.fixture(scope="module")
def road_map() -> RoadMap:
    return RoadMap.from_opendrive(generate_town(TownSpec(rows=2, cols=3, seed=3, name="l")), "l")


def test_forecasts_become_world_frame_modes_on_the_planner_grid(
    road_map: RoadMap, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = KaidoModel(small_model()).eval()
    stack = LearnedStack(
        model, SPEC, road_map, VehicleProfile(), load_sensor_rig(small_rig(tmp_path))
    )
    pose = np.array([10.0, -5.0, math.pi / 2])  # facing north
    m, k, t_f = 3, 6, SPEC.future_steps
    boxes = torch.zeros(1, m, len(BoxField))
    boxes[0, 0, [BoxField.X, BoxField.Y, BoxField.LENGTH, BoxField.WIDTH]] = torch.tensor(
        [8.0, 2.0, 4.5, 1.9]
    )
    boxes[0, 0, BoxField.VX] = 5.0
    steps = torch.arange(1, t_f + 1, dtype=torch.float32) * SPEC.step_seconds
    modes = torch.zeros(1, m, k, t_f, 2)
    modes[0, 0, :, :, 0] = 8.0 + 5.0 * steps  # straight ahead (ego frame) at 5 m/s
    modes[0, 0, :, :, 1] = 2.0
    modes[0, 0, 1, :, 1] = 2.0 + 0.5 * steps  # a second mode drifting left
    grid = SPEC.grid
    stride = 2
    heatmap = torch.full((1, len(DetectionClass), grid.height // stride, grid.width // stride), 9.0)
    outputs = {
        "detection_heatmap": heatmap,  # every cell confident
        "agent_boxes": boxes,
        "agent_class": torch.tensor([[int(DetectionClass.VEHICLE), -1, -1]]),
        "agent_mask": torch.tensor([[True, False, False]]),
        "forecast_modes": modes,
        "forecast_logits": torch.zeros(1, m, k),
    }
    agents, predicted = stack._predicted(pose, outputs, 0)
    assert len(agents) == 1 and predicted.num_agents == 1
    agent = agents[0]
    assert agent.agent_class is AgentClass.VEHICLE
    # ego frame (8, 2) with the ego at (10, -5) facing north: world (10 - 2, -5 + 8)
    assert agent.box.x == pytest.approx(8.0) and agent.box.y == pytest.approx(3.0)
    assert agent.box.yaw == pytest.approx(math.pi / 2)
    assert agent.velocity == pytest.approx((0.0, 5.0), abs=1e-9)
    times = stack.core.planner.settings.planner.times
    assert predicted.modes.shape == (1, k, len(times), len(ModeIndex))
    mode0 = predicted.modes[0, 0]
    assert mode0[0, ModeIndex.X] == pytest.approx(8.0)
    assert mode0[0, ModeIndex.Y] == pytest.approx(3.0)
    at_2s = int(round(2.0 / (times[1] - times[0])))
    assert mode0[at_2s, ModeIndex.Y] == pytest.approx(3.0 + 5.0 * 2.0, abs=1e-6)
    assert mode0[at_2s, ModeIndex.SPEED] == pytest.approx(5.0, abs=1e-6)
    assert mode0[at_2s, ModeIndex.YAW] == pytest.approx(math.pi / 2, abs=1e-6)
    mode1 = predicted.modes[0, 1]
    assert mode1[at_2s, ModeIndex.X] == pytest.approx(8.0 - 0.5 * 2.0, abs=1e-6)
    np.testing.assert_allclose(predicted.probabilities.sum(axis=1), 1.0)


def test_planner_sees_only_confident_detections(road_map: RoadMap, tmp_path: Path) -> None:
    from kaido.perception.detection import NUM_REGRESSION, decode_detections
    from kaido.prediction.learned import detections_to_queries

    model = KaidoModel(small_model()).eval()
    stack = LearnedStack(
        model, SPEC, road_map, VehicleProfile(), load_sensor_rig(small_rig(tmp_path))
    )
    cfg = model.cfg.perception.detection
    h, w = cfg.grid.height // cfg.stride, cfg.grid.width // cfg.stride
    heatmap = torch.full((1, len(DetectionClass), h, w), -20.0)
    regression = torch.zeros(1, NUM_REGRESSION, h, w)
    regression[:, :2] = 0.7  # sub-cell offsets: the box centre lies off its cell's corner
    peaks = [  # (class, row, col, score): vehicles need 0.3, pedestrians and cyclists 0.4
        (DetectionClass.VEHICLE, 4, 6, 0.35),
        (DetectionClass.VEHICLE, 20, 6, 0.25),
        (DetectionClass.PEDESTRIAN, 12, 20, 0.45),
        (DetectionClass.PEDESTRIAN, 26, 26, 0.35),
        (DetectionClass.CYCLIST, 2, 28, 0.2),
    ]
    for c, r, col, score in peaks:
        heatmap[0, int(c), r, col] = math.log(score / (1.0 - score))
    detections = decode_detections(heatmap, regression, cfg)
    scores = detections[0][1].numpy()
    assert len(scores) == len(peaks)  # all above the model's own 0.1
    boxes, classes, mask = detections_to_queries(detections, 8)
    outputs = {"detection_heatmap": heatmap, "agent_boxes": boxes, "agent_class": classes}
    keep = stack._confident(outputs)
    thresholds = stack.config.min_agent_score
    expected = [
        bool(mask[0, i]) and float(scores[i]) >= thresholds[int(classes[0, i])]
        for i in range(len(scores))
    ]
    assert keep[: len(scores)].tolist() == expected
    assert sum(expected) == 2 and not keep[len(scores) :].any()


def _observation(tmp_path: Path):  # type: ignore[no-untyped-def]
    from kaido.scene.town_generator import write_town
    from kaido.simulation.backend import Scenario
    from kaido.simulation.embedded.backend import EmbeddedBackend, EmbeddedConfig

    town = tmp_path / "town.xodr"
    write_town(TownSpec(rows=2, cols=3, seed=3, name="town"), town)
    backend = EmbeddedBackend(EmbeddedConfig(rig=load_sensor_rig(small_rig(tmp_path))))
    scenario = Scenario(name="t", map_path=town, traffic_density=30.0, pedestrians=20.0, seed=1)
    obs = backend.reset(scenario)
    for _ in range(10):
        obs = backend.step(_idle())
    return backend, obs


def _idle():  # type: ignore[no-untyped-def]
    from kaido.scene.agents import Control

    return Control(throttle=0.0, steer=0.0, brake=1.0)


def test_the_agent_never_sees_ground_truth(checkpoint: Path, tmp_path: Path) -> None:
    from kaido.simulation.learned_agent import LearnedAgent

    backend, obs = _observation(tmp_path)
    with backend:
        assert obs.frame.images and obs.frame.lidar
        truth = obs.ground_truth
        assert truth.agents, "the scene should have traffic"
        blind = dataclasses.replace(
            obs,
            frame=dataclasses.replace(
                obs.frame,
                ground_truth=GroundTruth(
                    agents=(),
                    traffic_lights=tuple(
                        dataclasses.replace(light, color=type(light.color)(0))
                        for light in truth.traffic_lights
                    ),
                ),
            ),
        )
        controls, plans = [], []
        for observation in (obs, blind):
            agent = LearnedAgent(checkpoint=checkpoint, rig=small_rig(tmp_path))
            agent.setup(
                road_map=backend.road_map,
                route=obs.route,
                profile=VehicleProfile(),
                dt=backend.dt,
            )
            controls.append(agent.run_step(observation))
            plans.append(agent.plan())
        assert controls[0] == controls[1]
        np.testing.assert_array_equal(plans[0], plans[1])
        for value in (controls[0].throttle, controls[0].steer, controls[0].brake):
            assert math.isfinite(value)


def test_learned_agent_drives_an_episode(checkpoint: Path, tmp_path: Path) -> None:
    from kaido.simulation.drive import DriveOptions, drive

    options = DriveOptions(
        out_dir=tmp_path / "drive",
        agent="learned",
        seed=2,
        seconds=2.0,
        rig=small_rig(tmp_path),
        progress=False,
        video=False,
        agent_options={"checkpoint": checkpoint},
    )
    episode = drive(options)
    results = json.loads(episode.results_path.read_text())
    assert results["_checkpoint"]["records"][0]["meta"]["duration_game"] >= 2.0 - 1e-6
    assert episode.mcap_path is not None and episode.mcap_path.stat().st_size > 0


def test_learned_agent_refuses_a_drive_without_sensors(checkpoint: Path, tmp_path: Path) -> None:
    from kaido.simulation.drive import DriveOptions, drive

    options = DriveOptions(
        out_dir=tmp_path / "d",
        agent="learned",
        sensors=False,
        progress=False,
        agent_options={"checkpoint": checkpoint},
    )
    with pytest.raises(ValueError, match="--no-sensors"):
        drive(options)
