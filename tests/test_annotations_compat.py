"""Array annotations work the same on every supported Python and numpy.

numpy >= 2.3 on Python >= 3.12 defines ``numpy.typing.NDArray`` as a ``typing.TypeAliasType``
(the ``type`` statement) instead of a generic alias; users can write their own aliases with
the ``type`` statement too. Whatever produced the class, its schema record and its stub must
come out byte for byte the same: ``tests/data/annotations_golden.json`` holds them, written
once and compared on every Python the CI runs.

Regenerate the golden file (only when the record format changes on purpose) with
``python tests/test_annotations_compat.py --write``.
"""

from __future__ import annotations

import json
import sys
import textwrap
import types
from pathlib import Path
from typing import Any, Optional

import numpy as np
import numpy.typing as npt
import pytest
from _samples_future import FutureSample
from numpy.typing import NDArray

from atdata_lite import packable
from atdata_lite.index.stubs import StubManager
from atdata_lite.schema import schema_record

GOLDEN = Path(__file__).parent / "data" / "annotations_golden.json"


@packable
class EveryArray:
    """Each way of spelling an array field, evaluated annotations."""

    bare: NDArray
    typed: NDArray[np.uint8]
    npt_typed: npt.NDArray[np.float32]
    plain: np.ndarray
    explicit: np.ndarray[Any, np.dtype[np.int16]]
    arrays: list[NDArray[np.uint8]]
    maybe: Optional[NDArray[np.float64]] = None  # noqa: UP045 - typing.Optional on purpose
    maybe_list: list[NDArray] | None = None


CLASSES = {"EveryArray": EveryArray, "FutureSample": FutureSample}

# The same fields as EveryArray, written through aliases made with the ``type`` statement
# (Python 3.12+; compiled at run time so this file still parses on 3.11).
TYPE_ALIAS_SOURCE = textwrap.dedent(
    '''
    from typing import Any, Optional
    import numpy as np
    import numpy.typing as npt
    from numpy.typing import NDArray
    from atdata_lite import packable

    type Image = NDArray[np.uint8]
    type Floats = npt.NDArray[np.float32]
    type AnyArray = NDArray
    type Plain = np.ndarray
    type Int16s = np.ndarray[Any, np.dtype[np.int16]]
    type Arr[T: np.generic] = NDArray[T]
    type Images = list[Image]
    type MaybeDoubles = Arr[np.float64] | None

    @packable
    class EveryArray:
        """Each way of spelling an array field, evaluated annotations."""

        bare: AnyArray
        typed: Image
        npt_typed: Floats
        plain: Plain
        explicit: Int16s
        arrays: Images
        maybe: MaybeDoubles = None
        maybe_list: list[Arr[Any]] | None = None
    '''
)


def _described(cls: type) -> dict[str, Any]:
    record = schema_record(cls, version="1.0.0")
    record.pop("createdAt")
    return {"record": record, "stub": StubManager().render(record)}


def _all_described() -> dict[str, Any]:
    return {name: _described(cls) for name, cls in CLASSES.items()}


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_records_and_stubs_match_the_golden_file(name: str) -> None:
    golden = json.loads(GOLDEN.read_text())
    assert _described(CLASSES[name]) == golden[name], (
        f"{name}'s schema record or stub differs on Python {sys.version.split()[0]} with "
        f"numpy {np.__version__} from the one written on another Python/numpy"
    )


def test_issue_snippet_array_fields_round_trip() -> None:
    @packable
    class A:
        x: NDArray[np.uint8]
        y: NDArray

    a = A(x=np.arange(4, dtype=np.uint8), y=np.ones((2, 2)))
    back = A.from_bytes(a.packed)
    assert back.x.dtype == np.uint8 and back.x.tolist() == [0, 1, 2, 3]
    assert back.y.shape == (2, 2)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="the type statement needs Python 3.12+")
def test_type_statement_aliases_describe_like_the_plain_annotations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = types.ModuleType("_atl_type_alias_samples")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(TYPE_ALIAS_SOURCE, module.__name__, "exec"), module.__dict__)
    aliased = module.EveryArray
    assert _described(aliased) == _described(EveryArray)

    sample = aliased(
        bare=np.zeros(2),
        typed=np.arange(3, dtype=np.uint8),
        npt_typed=np.ones(1, np.float32),
        plain=np.ones(1),
        explicit=np.ones(2, np.int16),
        arrays=[np.ones(2, np.uint8)],
        maybe=np.ones(1),
    )
    back = aliased.from_bytes(sample.packed)
    assert back.typed.dtype == np.uint8 and back.typed.tolist() == [0, 1, 2]
    assert back.arrays[0].dtype == np.uint8 and back.maybe.dtype == np.float64
    assert back.maybe_list is None


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    GOLDEN.write_text(json.dumps(_all_described(), indent=2, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
