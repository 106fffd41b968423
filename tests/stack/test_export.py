"""``kaido export``: the exported programs agree with the eager model on recorded frames, and
the loader runs them without the model's Python source."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("carla")

from kaido.logs.sample import PAD_CLASS, SampleSpec  # noqa: E402
from kaido.scene.agents import Control  # noqa: E402
from kaido.scene.sensors import load_sensor_rig  # noqa: E402
from kaido.scene.town_generator import TownSpec, write_town  # noqa: E402
from kaido.scene.vehicle import VehicleProfile  # noqa: E402
from kaido.stack.export import (  # noqa: E402
    FRAME_INPUTS,
    FRAME_OUTPUTS,
    IMAGINE_OUTPUTS,
    DecodeConfig,
    ExportedModel,
    decode_queries,
)
from kaido.stack.learned import LearnedStack  # noqa: E402
from kaido.tools import cmd_export  # noqa: E402
from kaido.world_model.lightning import load_checkpoint  # noqa: E402
from tests.simulation.test_collect import small_rig  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CHECKPOINT = REPO / "checkpoints" / "tiny.ckpt"
FRAMES = 3
ATOL = 1e-4


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("export")
    rig = small_rig(folder)
    code = cmd_export.main([str(CHECKPOINT), "--out", str(folder / "tiny"), "--rig", str(rig)])
    assert code == 0
    return folder / "tiny"


@pytest.fixture(scope="module")
def eager_model() -> Any:
    model, _ = load_checkpoint(CHECKPOINT)
    return model


@pytest.fixture(scope="module")
def exported(export_dir: Path) -> ExportedModel:
    return ExportedModel(export_dir)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Model batches of consecutive frames of an embedded-simulator episode with sensors, made
    by the learned stack itself (``LearnedStack.batch``)."""
    from kaido.simulation.backend import Scenario
    from kaido.simulation.embedded.backend import EmbeddedBackend, EmbeddedConfig

    folder = tmp_path_factory.mktemp("frames")
    town = folder / "town.xodr"
    write_town(TownSpec(rows=2, cols=3, seed=3, name="town"), town)
    rig = load_sensor_rig(small_rig(folder))
    model, block = load_checkpoint(CHECKPOINT)
    spec = SampleSpec.from_dict(block["spec"])
    batches: list[dict[str, Any]] = []

    class Recording(LearnedStack):
        def batch(self, frame: Any, time_s: float) -> dict[str, Any]:
            out = super().batch(frame, time_s)
            batches.append(out)
            return out

    backend = EmbeddedBackend(EmbeddedConfig(rig=rig))
    with backend:
        scenario = Scenario(
            name="export", map_path=town, traffic_density=30.0, pedestrians=10.0, seed=1
        )
        obs = backend.reset(scenario)
        assert backend.road_map is not None
        stack = Recording(model, spec, backend.road_map, VehicleProfile(), rig)
        stack.reset(obs.route)
        time_s = 0.0
        for _ in range(FRAMES):
            control, _ = stack.step(obs.frame, time_s, backend.dt)
            assert isinstance(control, Control)
            for _ in range(2):
                obs = backend.step(control)
                time_s += backend.dt
    assert len(batches) == FRAMES
    assert all(int(b["lidar_count"]) > 100 and bool(b["camera_mask"].all()) for b in batches)
    return batches


def _eager(model: Any, batches: list[dict[str, Any]]) -> list[tuple[dict[str, Any], Any]]:
    out = []
    memory = None
    with torch.no_grad():
        for batch in batches:
            fused, state = model.encode(batch, memory)
            heads = model._heads(batch, fused, state, segmentation=False)
            memory = heads["memory"]
            out.append((heads, state))
    return out


def test_eager_and_exported_agree_on_recorded_frames(
    eager_model: Any, exported: ExportedModel, recorded: list[dict[str, Any]]
) -> None:
    model = eager_model
    eager = _eager(model, recorded)
    memory = None
    rng = torch.Generator().manual_seed(0)
    for (heads, state), batch in zip(eager, recorded, strict=True):
        outputs, ex_state = exported.run(batch, memory)
        memory = outputs["memory"]
        assert set(heads) - {"memory"} <= set(FRAME_OUTPUTS)
        for name, value in heads.items():
            got = outputs[name]
            assert got.shape == value.shape and got.dtype == value.dtype, name
            if value.dtype == torch.bool or not value.dtype.is_floating_point:
                assert torch.equal(got, value), name
            else:
                torch.testing.assert_close(got, value, atol=ATOL, rtol=1e-4, msg=name)
        torch.testing.assert_close(ex_state.tokens, state.tokens, atol=ATOL, rtol=1e-4)
        torch.testing.assert_close(ex_state.ego, state.ego, atol=ATOL, rtol=1e-4)
        for k in (1, 5):
            actions = torch.randn(k, exported.imagined_steps, 2, generator=rng) * 0.5
            with torch.no_grad():
                want = model.world_model.imagine(state, actions)
            torch.testing.assert_close(
                exported.imagine(ex_state, actions), want, atol=ATOL, rtol=1e-4
            )


def test_static_decoding_equals_the_eager_decoder(eager_model: Any) -> None:
    from kaido.perception.detection import decode_detections
    from kaido.prediction.learned import detections_to_queries

    det = eager_model.cfg.perception.detection
    grid = det.grid
    for m, threshold in ((64, det.score_threshold), (8, 0.55), (200, 0.3)):
        cfg = DecodeConfig(
            nms_kernel=det.nms_kernel,
            max_detections=det.max_detections,
            score_threshold=threshold,
            stride=det.stride,
            origin_row=grid.origin_row,
            origin_col=grid.origin_col,
            resolution=float(grid.resolution),
            max_agents=m,
            pad_class=PAD_CLASS,
        )
        gen = torch.Generator().manual_seed(m)
        heat = torch.randn(2, 3, 32, 32, generator=gen) * 2.0
        reg = torch.randn(2, 8, 32, 32, generator=gen)
        eager_cfg = type(det)(**{**det.__dict__, "score_threshold": threshold})
        want = detections_to_queries(decode_detections(heat, reg, eager_cfg), m)
        got = decode_queries(heat, reg, cfg)
        for g, w in zip(got, want, strict=True):
            assert g.shape == w.shape
            torch.testing.assert_close(g, w, atol=1e-6, rtol=0)


def test_metadata_describes_the_programs(export_dir: Path) -> None:
    meta = json.loads((export_dir / "metadata.json").read_text())
    frame = meta["programs"]["frame"]
    assert [d["name"] for d in frame["inputs"]] == list(FRAME_INPUTS)
    assert [d["name"] for d in frame["outputs"]] == list(FRAME_OUTPUTS)
    shapes = {d["name"]: d for d in frame["inputs"]}
    assert shapes["camera_images"]["dtype"] == "uint8"
    assert shapes["pillar_coords"]["dtype"] == "int64"
    assert shapes["memory"]["shape"] == meta["initial_memory"]["shape"]
    imagine = meta["programs"]["imagine"]
    assert imagine["outputs"][0]["name"] == IMAGINE_OUTPUTS[0]
    assert imagine["outputs"][0]["shape"][0] == "K"
    assert meta["sample_spec"]["image_hw"] == list(
        SampleSpec.from_dict(meta["sample_spec"]).image_hw
    )
    assert meta["sensor_rig"]["cameras"][0]["name"] == "front"
    assert meta["model_config"]["name"] == "tiny"
    assert len(meta["checkpoint"]["sha256"]) == 64
    prov = meta["provenance"]
    assert "commit" in prov["git"] and prov["versions"]["torch"] == torch.__version__


def test_the_loader_needs_no_model_source(
    eager_model: Any,
    exported: ExportedModel,
    export_dir: Path,
    recorded: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    """A fresh interpreter loads and runs the export with only kaido.stack.export imported;
    afterwards neither kaido.world_model nor kaido.perception is in sys.modules."""
    model = eager_model
    batch = recorded[0]
    inputs = exported.frame_inputs(batch)  # pillarized here, in this process
    ((heads, state),) = _eager(model, [batch])
    actions = torch.randn(3, exported.imagined_steps, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        occupancy = model.world_model.imagine(state, actions)
    data = {f"in_{n}": t.numpy() for n, t in zip(FRAME_INPUTS, inputs, strict=True)}
    data.update({f"want_{n}": heads[n].numpy() for n in ("forecast_modes", "plan_logits")})
    data.update(actions=actions.numpy(), want_occupancy=occupancy.numpy())
    with (tmp_path / "frame.npz").open("wb") as fh:
        np.savez(fh, allow_pickle=False, **data)
    script = f"""
import sys
import numpy as np
import torch
from kaido.stack.export import FRAME_INPUTS, ExportedModel
data = np.load({str(tmp_path / "frame.npz")!r}, allow_pickle=False)
model = ExportedModel({str(export_dir)!r})
batch = {{n: torch.from_numpy(data["in_" + n]) for n in FRAME_INPUTS}}
memory = batch.pop("memory")
outputs, state = model.run(batch, memory)
occupancy = model.imagine(state, torch.from_numpy(data["actions"]))
for name, got in (("forecast_modes", outputs["forecast_modes"]),
                  ("plan_logits", outputs["plan_logits"]), ("occupancy", occupancy)):
    err = float(np.abs(got.numpy() - data["want_" + name]).max())
    assert err < {ATOL}, (name, err)
loaded = sorted(m for m in sys.modules
                if m.startswith(("kaido.world_model", "kaido.perception", "kaido.prediction")))
assert not loaded, loaded
print("ok", len(outputs))
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == f"ok {len(FRAME_OUTPUTS)}"


def test_bad_inputs_are_named(exported: ExportedModel, tmp_path: Path, capsys: Any) -> None:
    with pytest.raises(ValueError, match="lacks 'camera_images'"):
        exported.run({"lidar_points": torch.zeros(1, 10, 4), "lidar_count": torch.zeros(1)})
    tokens = torch.zeros(1, 1, 1)
    with pytest.raises(ValueError, match=r"actions must be \(K, 6, 2\)"):
        exported.imagine(tokens, torch.zeros(0, 6, 2))
    with pytest.raises(ValueError, match="actions must be finite"):
        exported.imagine(tokens, torch.full((1, 6, 2), float("nan")))
    with pytest.raises(FileNotFoundError, match="no export metadata"):
        ExportedModel(tmp_path)
    (tmp_path / "metadata.json").write_text(json.dumps({"format": 99}))
    with pytest.raises(ValueError, match="format 99, this loader reads 1"):
        ExportedModel(tmp_path)
    assert cmd_export.main([str(tmp_path / "absent.ckpt"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"kaido export: error: {tmp_path / 'absent.ckpt'}: no such checkpoint"]
