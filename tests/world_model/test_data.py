"""ShardDataset over a dataset built from real embedded-simulator logs."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader  # noqa: E402

from kaido.logs.dataset import load_shard, read_manifest  # noqa: E402
from kaido.logs.sample import SAMPLE_FIELDS, check_sample  # noqa: E402
from kaido.world_model.data import ShardDataset, collate  # noqa: E402
from tests.logs.test_dataset import TEST_SPEC, built_dataset  # noqa: E402

TORCH_DTYPES = {
    np.dtype(np.uint8): torch.uint8,
    np.dtype(np.float32): torch.float32,
    np.dtype(np.float16): torch.float32,  # float16 storage arrives as float32
    np.dtype(np.bool_): torch.bool,
    np.dtype(np.int32): torch.int32,
    np.dtype(np.int64): torch.int64,
}


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_dataset(tmp_path_factory.getbasetemp() / "kaido-data")


def test_items_have_the_contract_names_dtypes_and_shapes(data_dir: Path) -> None:
    manifest = read_manifest(data_dir)
    train = ShardDataset(data_dir, "train")
    val = ShardDataset(data_dir, "val")
    assert train.spec == TEST_SPEC
    assert len(train) == manifest["splits"]["train"]["samples"] == 4
    assert len(val) == manifest["splits"]["val"]["samples"] == 4
    assert len(ShardDataset(data_dir, "all")) == 8
    assert {train.sample_info(i)["log"] for i in range(len(train))}.isdisjoint(
        val.sample_info(i)["log"] for i in range(len(val))
    )
    item = train[0]
    assert set(item) == set(SAMPLE_FIELDS)
    for name, f in SAMPLE_FIELDS.items():
        assert item[name].dtype == TORCH_DTYPES[f.dtype], name
        assert tuple(item[name].shape) == f.shape(TEST_SPEC), name
    # the values are the shard's row, and valid samples by the numpy contract
    info = train.sample_info(1)
    arrays = load_shard(data_dir / "shards" / info["shard"], TEST_SPEC)
    sample = {k: v.numpy() for k, v in train[1].items()}
    for name in SAMPLE_FIELDS:
        np.testing.assert_array_equal(
            sample[name], np.asarray(arrays[name][info["row"]]).astype(sample[name].dtype)
        )
    sample["lidar_points"] = sample["lidar_points"].astype(np.float16)
    check_sample(sample, TEST_SPEC)
    assert train[-1]["ego_state"].shape == (4,)
    with pytest.raises(IndexError, match="out of range"):
        train[len(train)]


def test_sequences_are_consecutive_frames_of_one_log(data_dir: Path) -> None:
    single = ShardDataset(data_dir, "all")
    triple = ShardDataset(data_dir, "all", sequence=3)
    assert len(triple) == 2 * (4 - 2)  # two logs of four consecutive samples
    stride = TEST_SPEC.step_ns
    for j in range(len(triple)):
        info = triple.sample_info(j)
        times = info["timestamps_ns"]
        assert np.diff(times).tolist() == [stride, stride]
        item = triple[j]
        assert tuple(item["bev_semantics"].shape) == (3, 4, 64, 64)
        assert tuple(item["lidar_count"].shape) == (3,)
        for frame in range(3):
            row = next(
                i
                for i in range(len(single))
                if single.sample_info(i)["log"] == info["log"]
                and single.sample_info(i)["timestamps_ns"] == [times[frame]]
            )
            for name in ("ego_state", "boxes", "occupancy_future", "lidar_points"):
                assert torch.equal(item[name][frame], single[row][name]), name
    assert len(ShardDataset(data_dir, "all", sequence=5)) == 0  # longer than any log


def test_gaps_in_time_break_sequences(data_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "data"
    copy.mkdir()
    manifest = read_manifest(data_dir)
    for entry in manifest["shards"]:
        target = copy / entry["path"]
        target.mkdir(parents=True)
        for source in (data_dir / entry["path"]).iterdir():
            (target / source.name).symlink_to(source)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    meta_path = copy / "shards" / "stopped" / "shard.json"
    meta = json.loads(meta_path.read_text())
    meta["timestamps_ns"][2] += 10 * TEST_SPEC.step_ns  # a missing stretch before sample 2
    meta_path.unlink()
    meta_path.write_text(json.dumps(meta))
    ds = ShardDataset(copy, "all", sequence=2)
    stopped = [i for i in range(len(ds)) if ds.sample_info(i)["shard"] == "stopped"]
    assert [ds.sample_info(i)["row"] for i in stopped] == [0]  # (0,1) only; (1,2), (2,3) broken


def test_loader_batches_and_workers(data_dir: Path) -> None:
    dataset = ShardDataset(data_dir, "all", fields=("camera_images", "ego_future", "lidar_count"))
    assert len(pickle.dumps(dataset)) < 100_000  # no memory maps or arrays travel
    loader = DataLoader(dataset, batch_size=4, shuffle=False, collate_fn=collate)
    batches = list(loader)
    assert len(batches) == 2
    assert set(batches[0]) == {"camera_images", "ego_future", "lidar_count"}
    assert tuple(batches[0]["camera_images"].shape) == (4, 1, 3, 48, 80)
    assert batches[0]["camera_images"].dtype == torch.uint8
    assert tuple(batches[0]["lidar_count"].shape) == (4,)
    default = next(iter(DataLoader(dataset, batch_size=4, shuffle=False)))
    assert all(torch.equal(default[k], batches[0][k]) for k in default)
    restored = pickle.loads(pickle.dumps(dataset))
    assert torch.equal(restored[3]["ego_future"], dataset[3]["ego_future"])
    with pytest.raises(ValueError, match="different shapes"):
        collate([{"a": torch.zeros(2)}, {"a": torch.zeros(3)}])


def test_errors_name_the_problem(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"manifest\.json"):
        ShardDataset(tmp_path)
    with pytest.raises(ValueError, match="split"):
        ShardDataset(data_dir, "test")
    with pytest.raises(ValueError, match="sequence"):
        ShardDataset(data_dir, sequence=0)
    with pytest.raises(ValueError, match="unknown fields"):
        ShardDataset(data_dir, fields=("pixels",))
