"""The DALI loader: per-sample arrays read, augmented and moved to the GPU by an NVIDIA DALI
pipeline, the rest of each sample joined from the dataset by index.

DALI's `fn.readers.numpy` reads the one-file-per-sample arrays (`climate`, `spectrum`,
`spectrum_err`, `spectrum_mask`; see `astrobio.data.format`). Each field has its own reader
over the same file order, never shuffled by DALI: the order is the `ResumableSampler`'s for
this epoch and rank (its position, padding and rank stride included), so an epoch holds the
same samples in the same batches as `make_loader`, and the pipeline is rebuilt for each epoch
with that epoch's file list. The fields DALI does not read (graph, params, labels, text,
`present`) come from a torch DataLoader over the same indices, batched by
`multimodal_collate_fn`, and the two streams are zipped batch by batch.

No normalisation happens here: the model normalises its inputs itself
(`astrobio.models.normalisation`, and per-sample in the spectral encoder), exactly as on the
torch path, so both loaders yield the same values.

Augmentation (`augment=True`, training only), on the GPU when the pipeline has one:
    climate   rolled along longitude (the last axis, periodic) by k ~ U{0, ..., W-1}:
              out[..., j] = x[..., (j + k) mod W]
    spectrum  depth + err * n, n ~ N(0, 1), on observed bins only (mask True); the
              uncertainty and mask are passed through unchanged
Random draws come from a pipeline seed drawn from (seed, epoch).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from astrobio.data.batch import MultiModalBatch, multimodal_collate_fn
from astrobio.data.format import SAMPLE_FILES, inspect_npy, sample_file, sample_shapes
from astrobio.data.loader import ResumableSampler
from astrobio.data.reader import AstroBioDataset
from astrobio.errors import ConfigError, DataError

DALI_INSTALL = ("pip install 'astrobio[dali]'  (the nvidia-dali-cuda130 wheel; it also runs "
                "CPU-only pipelines on a machine without a GPU)")
READ_FIELDS = tuple(SAMPLE_FILES)  # climate, spectrum, spectrum_err, spectrum_mask
_FLOAT_FIELDS = tuple(f for f in READ_FIELDS if SAMPLE_FILES[f].kind == "f")


def import_dali():
    """`(nvidia.dali, DALIGenericIterator, LastBatchPolicy)`, or a ConfigError saying how to
    install DALI."""
    try:
        import nvidia.dali as dali
        from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy
    except ImportError as err:
        raise ConfigError(f"the DALI loader needs NVIDIA DALI, which cannot be imported "
                          f"({err}); install it with: {DALI_INSTALL}; or use the torch "
                          "loader (--loader torch)") from None
    return dali, DALIGenericIterator, LastBatchPolicy


def dali_available() -> bool:
    try:
        import_dali()
    except ConfigError:
        return False
    return True


def _resolve_device(device: str | torch.device) -> int | None:
    """DALI's `device_id`: a CUDA index, or None for a CPU-only pipeline."""
    if str(device) == "auto":
        return torch.cuda.current_device() if torch.cuda.is_available() else None
    device = torch.device(device)
    if device.type == "cpu":
        return None
    if device.type != "cuda" or not torch.cuda.is_available():
        raise ConfigError(f"the DALI loader runs on the CPU or a CUDA device, not {device}")
    return torch.cuda.current_device() if device.index is None else device.index


def _dali_reason(err: Exception) -> str:
    """The line of a (long) DALI error that says what failed."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for line in lines:
        if "failed:" in line:
            return line.split("failed:", 1)[1].strip()
    return lines[-1] if lines else type(err).__name__


class DALILoader:
    """Batches like `make_loader`'s (a `MultiModalBatch` each), with the per-sample arrays
    from DALI (on the pipeline's device) and a `ResumableSampler` for the order and the
    checkpointable position (`state_dict` / `load_state_dict`). `dataset.check` turns the
    per-batch value checks on, as it does the dataset's per-item ones."""

    def __init__(self, dataset: AstroBioDataset, batch_size: int, shuffle: bool = True,
                 seed: int = 0, augment: bool = False, drop_last: bool = False,
                 num_replicas: int = 1, rank: int = 0, device: str | torch.device = "auto",
                 num_threads: int = 2, num_workers: int = 0, prefetch_queue_depth: int = 2):
        self._dali = import_dali()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.dataset, self.batch_size, self.augment = dataset, batch_size, augment
        self.drop_last, self.num_threads, self.num_workers = drop_last, num_threads, num_workers
        self.prefetch_queue_depth = prefetch_queue_depth
        self.device_id = _resolve_device(device)
        self.sampler = ResumableSampler(len(dataset), shuffle=shuffle, seed=seed,
                                        num_replicas=num_replicas, rank=rank)
        self._rest = AstroBioDataset(dataset.root, dataset.split, tokenizer=dataset.tokenizer,
                                     check=dataset.check, read_sample_files=False)
        self._shapes = sample_shapes(dataset.config)

    def __len__(self) -> int:
        """Batches left in this epoch."""
        count = len(self.sampler)
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)

    def state_dict(self) -> dict:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)

    def _epoch_indices(self) -> np.ndarray:
        indices = self.sampler.order(self.sampler.epoch)[self.sampler.position:]
        if self.drop_last:
            indices = indices[: len(indices) // self.batch_size * self.batch_size]
        return indices

    def _paths(self, field: str, indices: np.ndarray) -> list[str]:
        """`field`'s files for these samples, relative to the split directory."""
        records = self.dataset.records
        return [f"{records[i]['shard']}/{field}/{sample_file(records[i]['position'])}"
                for i in indices]

    def _pipeline(self, indices: np.ndarray):
        dali, _, _ = self._dali
        fn, types = dali.fn, dali.types
        root = str(self.dataset.root / self.dataset.split)
        files = {field: self._paths(field, indices) for field in READ_FIELDS}
        key = np.random.SeedSequence([self.sampler.seed, self.sampler.epoch, 0xDA11])
        width = self._shapes["climate"][-1]
        on_gpu = self.device_id is not None

        @dali.pipeline_def(batch_size=self.batch_size, num_threads=self.num_threads,
                           device_id=self.device_id,
                           seed=int(key.generate_state(1, np.uint32)[0] >> 1),
                           prefetch_queue_depth=self.prefetch_queue_depth)
        def pipeline():
            # The padded tail of a short last batch repeats its last file in every reader
            # alike; the iterator drops it.
            out = {field: fn.readers.numpy(file_root=root, files=files[field],
                                           random_shuffle=False, pad_last_batch=True,
                                           name=field)
                   for field in READ_FIELDS}
            if on_gpu:
                out = {field: node.gpu() for field, node in out.items()}
            if self.augment:
                shift = fn.random.uniform(values=list(range(width)), dtype=types.INT32)
                twice = fn.cat(out["climate"], out["climate"], axis=3)
                out["climate"] = fn.slice(twice, start=fn.stack(shift), shape=[width],
                                          axes=[3], out_of_bounds_policy="error")
                noise = fn.random.normal(out["spectrum"], dtype=types.FLOAT)
                observed = fn.cast(out["spectrum_mask"], dtype=types.FLOAT)
                out["spectrum"] = out["spectrum"] + noise * out["spectrum_err"] * observed
            return tuple(out[field] for field in READ_FIELDS)

        return pipeline()

    def _data_error(self, err: Exception, indices: np.ndarray) -> DataError:
        """The first defective file of this epoch, named; else DALI's reason in one line."""
        split_dir = self.dataset.root / self.dataset.split
        for field in READ_FIELDS:
            for index, path in zip(indices, self._paths(field, indices), strict=True):
                _, messages = inspect_npy(split_dir / path, SAMPLE_FILES[field],
                                          self._shapes[field])
                if messages:
                    return DataError("; ".join(messages), file=str(split_dir / path),
                                     sample=self.dataset.records[index]["planet_id"],
                                     field=field)
        return DataError(f"the DALI pipeline failed: {_dali_reason(err)}",
                         file=str(split_dir))

    def _check(self, arrays: dict[str, torch.Tensor], indices: np.ndarray) -> None:
        """Non-finite values or non-positive observed uncertainties, as the dataset's check;
        one host sync per batch on a GPU, numpy on the CPU (torch 2.13's CPU `isfinite` took
        1.4 ms on one thread and 50 ms on two for a tiny batch's datacube, numpy's 0.01 ms)."""
        if self.device_id is None:
            xp, arrays = np, {name: value.numpy() for name, value in arrays.items()}
        else:
            xp = torch
        bad = [~xp.isfinite(arrays[f]).reshape(len(indices), -1).all(1) for f in _FLOAT_FIELDS]
        bad.append(((arrays["spectrum_err"] <= 0) & arrays["spectrum_mask"]).any(1))
        bad = xp.stack(bad, 1)
        if xp is torch:
            bad = bad.cpu().numpy()
        if not bad.any():
            return
        row, column = (int(v) for v in np.argwhere(bad)[0])
        field = (*_FLOAT_FIELDS, "spectrum_err")[column]
        message = ("non-finite value(s) (NaN or inf)" if column < len(_FLOAT_FIELDS)
                   else "uncertainty must be positive where observed")
        record = self.dataset.records[indices[row]]
        path = Path(self.dataset.root, self.dataset.split, record["shard"], field,
                    sample_file(record["position"]))
        raise DataError(message, file=str(path), sample=record["planet_id"], field=field)

    def __iter__(self) -> Iterator[MultiModalBatch]:
        indices = self._epoch_indices()
        if len(indices):
            yield from self._epoch(indices)
        if self.sampler.position:  # drop_last left a remainder unconsumed
            self.sampler.start_next_epoch()

    def _epoch(self, indices: np.ndarray) -> Iterator[MultiModalBatch]:
        _, generic_iterator, last_batch_policy = self._dali
        try:
            pipeline = self._pipeline(indices)
            pipeline.build()
            arrays_iter = generic_iterator(
                [pipeline], list(READ_FIELDS), reader_name=READ_FIELDS[0],
                last_batch_policy=last_batch_policy.PARTIAL, auto_reset=False)
        except RuntimeError as err:
            raise self._data_error(err, indices) from None
        rest = DataLoader(self._rest, batch_size=self.batch_size, sampler=indices.tolist(),
                          num_workers=self.num_workers, collate_fn=multimodal_collate_fn,
                          pin_memory=self.device_id is not None)
        rest_iter = iter(rest)
        for start in range(0, len(indices), self.batch_size):
            try:
                arrays = next(arrays_iter)[0]
            except RuntimeError as err:
                raise self._data_error(err, indices) from None
            batch_indices = indices[start:start + self.batch_size]
            if self.dataset.check:
                self._check(arrays, batch_indices)
            batch = dataclasses.replace(next(rest_iter), **arrays)
            self.sampler.advance(batch.batch_size)
            yield batch


def make_dali_loader(dataset_root: str | Path, split: str, batch_size: int,
                     shuffle: bool = True, seed: int = 0, augment: bool = False,
                     drop_last: bool = False, num_replicas: int = 1, rank: int = 0,
                     device: str | torch.device = "auto", num_threads: int = 2,
                     num_workers: int = 0, tokenizer=None) -> DALILoader:
    """The DALI counterpart of `make_loader(AstroBioDataset(dataset_root, split), ...)`.

    `device`: "auto" (the current CUDA device if there is one, else CPU-only), "cpu",
    "cuda" or "cuda:N". `num_threads`: DALI's CPU threads; `num_workers`: the torch
    workers that read the graph, text and labels.
    """
    import_dali()  # the install hint before any dataset work
    dataset = AstroBioDataset(dataset_root, split, tokenizer=tokenizer)
    return DALILoader(dataset, batch_size, shuffle=shuffle, seed=seed, augment=augment,
                      drop_last=drop_last, num_replicas=num_replicas, rank=rank, device=device,
                      num_threads=num_threads, num_workers=num_workers)
