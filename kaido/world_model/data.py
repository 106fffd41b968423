"""Torch access to ``kaido dataset build`` shards (format: :mod:`kaido.logs.dataset`).

:class:`ShardDataset` serves one split of a dataset as ``dict[str, Tensor]`` samples named as in
:data:`~kaido.logs.sample.SAMPLE_FIELDS`, read from memory-mapped ``.npy`` files (random access
without loading a shard). dtypes are the table's, except that ``float16`` storage
(``lidar_points``) arrives as ``float32``; uint8 images stay uint8 (the model normalises).
With ``sequence=S > 1`` an item is ``S`` consecutive samples of one log (consecutive frames,
``stride_ns`` apart), each field stacked on a new leading axis: ``(S, *shape)``. A batch from a
``DataLoader`` (default collation, or :func:`collate`) adds the leading ``B`` axis.

The memory maps are opened lazily in each process and never pickled, so the dataset is cheap to
send to ``DataLoader`` workers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import Dataset

from kaido.logs.dataset import SHARD_META, load_shard, read_manifest
from kaido.logs.sample import SAMPLE_FIELDS, SampleSpec

__all__ = ["SPLITS", "ShardDataset", "collate"]

SPLITS = ("train", "val", "all")
"""Split names: ``all`` is both."""


class ShardDataset(Dataset[dict[str, torch.Tensor]]):
    """One split of a dataset folder (``data_dir/manifest.json``) as a map-style dataset.

    ``fields`` limits the fields read (default: all of :data:`SAMPLE_FIELDS`). Errors name the
    folder, shard or file (a missing manifest, a field file whose dtype or shape does not match
    the manifest's spec).
    """

    def __init__(
        self,
        data_dir: str | Path,
        split: str = "train",
        sequence: int = 1,
        fields: Sequence[str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        if split not in SPLITS:
            raise ValueError(f"ShardDataset: split must be one of {SPLITS}, got {split!r}")
        if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 1:
            raise ValueError(f"ShardDataset: sequence must be an integer >= 1, got {sequence!r}")
        manifest = read_manifest(self.data_dir)
        self.manifest = manifest
        self.spec = SampleSpec.from_dict(manifest["spec"], where=f"{self.data_dir}/manifest.json")
        self.split = split
        self.sequence = sequence
        names = tuple(SAMPLE_FIELDS) if fields is None else tuple(fields)
        unknown = [f for f in names if f not in SAMPLE_FIELDS]
        if unknown:
            raise ValueError(f"ShardDataset: unknown fields {unknown}")
        self.fields = names
        self.shards: list[dict[str, Any]] = []
        self._timestamps: list[npt.NDArray[np.int64]] = []
        starts: list[npt.NDArray[np.int64]] = []
        for entry in manifest["shards"]:
            if entry["samples"] <= 0 or (split != "all" and entry["split"] != split):
                continue
            folder = self.data_dir / entry["path"]
            meta_path = folder / SHARD_META
            if not meta_path.is_file():
                raise FileNotFoundError(f"{meta_path}: shard listed in the manifest is missing")
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            times = np.asarray(meta["timestamps_ns"], dtype=np.int64)
            if len(times) != entry["samples"]:
                raise ValueError(
                    f"{meta_path}: {len(times)} timestamps, the manifest says {entry['samples']}"
                )
            load_shard(folder, self.spec)  # checks every field file's dtype and shape
            stride = int(meta["stride_ns"])
            if len(times) >= sequence:
                span = times[sequence - 1 :] - times[: len(times) - sequence + 1]
                valid = np.flatnonzero(span == stride * (sequence - 1))
            else:
                valid = np.zeros(0, dtype=np.int64)
            shard_index = len(self.shards)
            self.shards.append({**entry, "folder": folder, "log": meta.get("log")})
            self._timestamps.append(times)
            starts.append(np.stack([np.full(len(valid), shard_index), valid], axis=1))
        self._index = (
            np.concatenate(starts, axis=0).astype(np.int64)
            if starts
            else np.zeros((0, 2), dtype=np.int64)
        )
        self._arrays: list[dict[str, npt.NDArray[Any]]] | None = None

    def __len__(self) -> int:
        return int(len(self._index))

    def _shard_arrays(self, shard: int) -> Mapping[str, npt.NDArray[Any]]:
        if self._arrays is None:
            self._arrays = [{} for _ in self.shards]
        arrays = self._arrays[shard]
        if not arrays:
            loaded = load_shard(self.shards[shard]["folder"], self.spec)
            arrays.update({name: loaded[name] for name in self.fields})
        return arrays

    def sample_info(self, index: int) -> dict[str, Any]:
        """Where item ``index`` comes from: ``shard``, ``log``, ``row`` and ``timestamps_ns``
        (one per frame of the sequence)."""
        shard, row = (int(v) for v in self._index[self._check_index(index)])
        times = self._timestamps[shard][row : row + self.sequence]
        return {
            "shard": self.shards[shard]["name"],
            "log": self.shards[shard]["log"],
            "row": row,
            "timestamps_ns": [int(t) for t in times],
        }

    def _check_index(self, index: int) -> int:
        n = len(self)
        i = int(index)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"ShardDataset({self.split}): index {index} out of range ({n} items)")
        return i

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        shard, row = (int(v) for v in self._index[self._check_index(index)])
        arrays = self._shard_arrays(shard)
        out: dict[str, torch.Tensor] = {}
        for name in self.fields:
            array = arrays[name]
            if self.sequence == 1:
                value = np.array(array[row])
            else:
                value = np.array(array[row : row + self.sequence])
            if value.dtype == np.float16:
                value = value.astype(np.float32)
            out[name] = torch.from_numpy(value)
        return out

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_arrays"] = None  # memory maps are reopened in the receiving process
        return state

    def __repr__(self) -> str:
        return (
            f"ShardDataset({str(self.data_dir)!r}, split={self.split!r}, "
            f"sequence={self.sequence}, {len(self)} items from {len(self.shards)} shards)"
        )


def collate(samples: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack samples on a new leading ``B`` axis (what the default collation does, checked):
    every sample must have the same fields and shapes."""
    if not samples:
        raise ValueError("collate: no samples")
    keys = list(samples[0])
    out: dict[str, torch.Tensor] = {}
    for key in keys:
        values = []
        for i, sample in enumerate(samples):
            if key not in sample:
                raise ValueError(f"collate: sample {i} has no field {key!r}")
            values.append(sample[key])
        shapes = {tuple(v.shape) for v in values}
        if len(shapes) > 1:
            raise ValueError(f"collate: field {key!r} has different shapes {sorted(shapes)}")
        out[key] = torch.stack(values)
    return out
