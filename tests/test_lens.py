"""Lenses: identity, composition, string annotations, DictSample -> @packable."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from _data_helpers import Row

from atdata_lite.lenses import Lens, LensNetwork, lens
from atdata_lite.samples import DictSample, packable


@packable
class A:
    v: int


@packable
class B:
    w: int


@packable
class C:
    s: str


@lens
def a_to_b(a: A) -> B:  # string annotations here (future import): must still register
    return B(w=a.v + 1)


@a_to_b.putter
def a_to_b_put(b: B, a: A) -> A:
    return A(v=b.w - 1)


@lens
def b_to_c(b: B) -> C:
    return C(s=str(b.w))


def test_string_annotations_are_resolved():
    assert a_to_b.source_type is A and a_to_b.view_type is B


def test_registered_lens_and_putter():
    got = LensNetwork().transform(A, B)
    assert got.get(A(v=1)) == B(w=2)
    assert got.put(B(w=10), A(v=0)) == A(v=9)


def test_identity_lens():
    ident = LensNetwork().transform(A, A)
    a = A(v=3)
    assert ident(a) is a


def test_composition_finds_a_path():
    chain = LensNetwork().transform(A, C)
    assert chain.source_type is A and chain.view_type is C
    assert chain(A(v=4)) == C(s="5")


def test_composed_put_goes_back_through_the_chain():
    chain = a_to_b.then(Lens(lambda b: b, lambda v, s: v, source_type=B, view_type=B))
    assert chain.put(B(w=7), A(v=0)) == A(v=6)


def test_no_path_is_a_value_error():
    with pytest.raises(ValueError, match="No registered lens from source"):
        LensNetwork().transform(C, A)


def test_getter_must_take_one_parameter():
    with pytest.raises(ValueError, match="exactly one parameter, got 2"):
        Lens(lambda a, b: a)


def test_packable_registers_dict_sample_lens():
    view = LensNetwork().transform(DictSample, Row)
    d = DictSample.from_bytes(Row(idx=1, label="x", vec=np.zeros(2, np.float32)).packed)
    row = view(d)
    assert isinstance(row, Row) and isinstance(row.vec, np.ndarray)


@pytest.mark.parametrize(
    "imports",
    [
        "import atdata_lite.dataset",
        "import atdata_lite.lens",
        "from atdata_lite.lens import Lens",
        "import atdata_lite.lenses, atdata_lite.lens, atdata_lite.dataset",
    ],
)
def test_package_lens_is_the_decorator_whatever_was_imported(imports):
    # A fresh interpreter: the submodules must not be imported yet when the package is.
    code = (
        "import atdata_lite as a\n"
        "a.Dataset\n"
        f"{imports}\n"
        "from atdata_lite.lenses import lens\n"
        "assert a.lens is lens, a.lens\n"
        "from atdata_lite import lens as imported\n"
        "assert imported is lens\n"
        "from atdata_lite.lens import Lens, LensNetwork, lens as via_module_path\n"
        "assert via_module_path is lens and Lens.__name__ == 'Lens'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
