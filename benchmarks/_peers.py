"""Peers for read_write.py: LitData, Mosaic streaming and Hugging Face datasets.

Each peer writes the workload's records into its own format with its defaults (no
compression), then reads them back as its users do: LitData's and Mosaic's
``StreamingDataset`` iterated directly (no DataLoader), HF ``datasets`` as an Arrow dataset
from ``load_from_disk``. Shuffled reads use each peer's own shuffle with its defaults.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.metadata
import sys
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

from _workloads import WORKLOADS, Workload, record


@dataclass(frozen=True)
class Peer:
    """How to write and read one peer's format."""

    name: str
    dist: str  # the distribution, for its version
    module: str  # what must import for the peer to run
    write: Callable[[Workload, str, int], None]
    read: Callable[[Workload, str, bool], Iterable[Any]]
    shuffled_note: str


def _stub_torchvision() -> str | None:
    """Let Mosaic streaming import without a working torchvision.

    ``import streaming`` imports its vision datasets, which import torchvision; PyPI has no
    CPU torchvision wheel matching a CPU torch build. The vision datasets are not used here:
    a stub with the two names they import lets the package load. Returns a note, or None
    when the real torchvision imports.
    """
    try:
        import torchvision  # noqa: F401

        return None
    except Exception:
        pass
    import torch.utils.data

    tv = types.ModuleType("torchvision")
    datasets = types.ModuleType("torchvision.datasets")
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")

    class VisionDataset(torch.utils.data.Dataset):  # type: ignore[type-arg]
        pass

    def to_tensor(_: Any) -> Any:
        raise RuntimeError("torchvision stub: to_tensor is not available")

    datasets.VisionDataset = VisionDataset  # type: ignore[attr-defined]
    functional.to_tensor = to_tensor  # type: ignore[attr-defined]
    tv.datasets, tv.transforms, transforms.functional = datasets, transforms, functional  # type: ignore[attr-defined]
    for mod in (tv, datasets, transforms, functional):
        # A spec, so that find_spec() callers (transformers, datasets) do not fail on it;
        # no distribution metadata, so they still see torchvision as not installed.
        mod.__spec__ = importlib.machinery.ModuleSpec(mod.__name__, None, is_package=True)
        mod.__path__ = []  # type: ignore[attr-defined]
        sys.modules[mod.__name__] = mod
    return "torchvision stubbed for import"


def probe(peer: Peer) -> tuple[str | None, str | None]:
    """(version, None) when the peer imports, else (None, why not)."""
    try:
        if peer.name == "mosaic":
            _stub_torchvision()
        importlib.import_module(peer.module)
        return importlib.metadata.version(peer.dist), None
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}".splitlines()[0][:120]


# LitData --------------------------------------------------------------------------------


def _litdata_fn(name: str, i: int) -> dict[str, Any]:
    return record(name, i)


def litdata_write(w: Workload, out: str, n: int) -> None:
    from litdata import optimize

    optimize(
        fn=partial(_litdata_fn, w.name),
        inputs=list(range(n)),
        output_dir=out,
        chunk_bytes="64MB",
        num_workers=1,
        mode="overwrite",
        verbose=False,
    )


def litdata_read(w: Workload, out: str, shuffled: bool) -> Iterable[Any]:
    from litdata import StreamingDataset

    return StreamingDataset(out, shuffle=shuffled, seed=0)


# Mosaic streaming -----------------------------------------------------------------------


def _mds_columns(w: Workload) -> dict[str, str]:
    if w.array_field is None:
        return {"idx": "int", "label": "str", "score": "float64"}
    assert w.array_shape is not None
    shape = ",".join(str(d) for d in w.array_shape)
    return {"idx": "int", w.array_field: f"ndarray:uint8:{shape}"}


def mosaic_write(w: Workload, out: str, n: int) -> None:
    _stub_torchvision()
    from streaming import MDSWriter

    with MDSWriter(out=out, columns=_mds_columns(w)) as writer:
        for i in range(n):
            writer.write(record(w.name, i))


def mosaic_read(w: Workload, out: str, shuffled: bool) -> Iterable[Any]:
    _stub_torchvision()
    from streaming import StreamingDataset
    from streaming.base.util import clean_stale_shared_memory

    clean_stale_shared_memory()
    # batch_size is the per-device batch a training loop would pass (256, as the batched
    # cases); it sets how far ahead samples are made ready (8 batches). With batch_size=1 the
    # iterator waits on a 7 ms tick every 8 samples.
    return StreamingDataset(local=out, shuffle=shuffled, shuffle_seed=0, batch_size=256)


# Hugging Face datasets ------------------------------------------------------------------


def _hf_features(w: Workload) -> Any:
    import datasets as hf

    if w.array_field is None:
        return hf.Features(
            {"idx": hf.Value("int64"), "label": hf.Value("string"), "score": hf.Value("float64")}
        )
    assert w.array_shape is not None
    array = hf.Array2D if len(w.array_shape) == 2 else hf.Array3D
    return hf.Features(
        {"idx": hf.Value("int64"), w.array_field: array(shape=w.array_shape, dtype="uint8")}
    )


def _hf_gen(name: str, n: int) -> Iterable[dict[str, Any]]:
    for i in range(n):
        yield record(name, i)


def hf_write(w: Workload, out: str, n: int) -> None:
    import datasets as hf

    hf.disable_progress_bars()
    ds = hf.Dataset.from_generator(
        _hf_gen,
        gen_kwargs={"name": w.name, "n": n},
        features=_hf_features(w),
        cache_dir=out + "-cache",
    )
    ds.save_to_disk(out)


def hf_read(w: Workload, out: str, shuffled: bool) -> Iterable[Any]:
    import datasets as hf

    hf.disable_progress_bars()
    ds = hf.load_from_disk(out)
    # Arrays as numpy (the python format would build nested lists of ints).
    fmt = None if w.array_field is None else "numpy"
    if not shuffled:
        return ds if fmt is None else ds.with_format(fmt)
    it = ds.to_iterable_dataset(num_shards=64).shuffle(seed=0, buffer_size=10_000)
    return it if fmt is None else it.with_format(fmt)


PEERS: dict[str, Peer] = {
    "litdata": Peer(
        "litdata",
        "litdata",
        "litdata",
        litdata_write,
        litdata_read,
        "shuffle=True (chunks shuffled, then samples within a window)",
    ),
    "mosaic": Peer(
        "mosaic",
        "mosaicml-streaming",
        "streaming",
        mosaic_write,
        mosaic_read,
        "shuffle=True (py1e, default block size)",
    ),
    "hf": Peer(
        "hf",
        "datasets",
        "datasets",
        hf_write,
        hf_read,
        "to_iterable_dataset(64 shards).shuffle(buffer 10,000)",
    ),
}

__all__ = ["PEERS", "WORKLOADS", "Peer", "probe"]
