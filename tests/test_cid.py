"""CIDs are byte-identical to atdata's (dataset and schema CIDs), computed without libipld."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atdata_lite.cid import (
    dataset_cid,
    encode_dag_cbor,
    generate_cid,
    generate_cid_from_bytes,
    parse_cid,
    verify_cid,
)

GENERIC_VECTORS = [
    ({}, "a0", "bafyreigbtj4x7ip5legnfznufuopl4sg4knzc2cof6duas4b3q2fy6swua"),
    (
        {"name": "test", "value": 42},
        "a2646e616d6564746573746576616c7565182a",
        "bafyreidnzhwcbncg3avwjjao5o6wx4zhnksmxhdo6w5iaqupexnmzdlb54",
    ),
    (
        {"value": 42, "name": "test"},
        "a2646e616d6564746573746576616c7565182a",
        "bafyreidnzhwcbncg3avwjjao5o6wx4zhnksmxhdo6w5iaqupexnmzdlb54",
    ),
    ("hello", "6568656c6c6f", "bafyreiglqnkzhzh2gyz4zfy7zpi6wcamumrclarakshlocd35l4o63l76q"),
    ([1, 2, 3], "83010203", "bafyreickxqyrg7hhhdm2z24kduovd4k4vvbmfmenzn7nc6pxg6qzjm2v44"),
    (b"\x00\x01", "420001", "bafyreihhelplsn44m6p44ofcvh5wogyi6qwku3zyyja5o5kjdtooedvswa"),
    (
        {"a": None, "b": True, "c": -1, "d": "é"},
        "a46161f66162f5616320616462c3a9",
        "bafyreigt4ru5os23x2jlgcz3gjmeslnkowk7btft7bhlvda6cjhfbrroiy",
    ),
    (
        {"bb": 1, "a": 2, "ccc": 3, "b": 4},
        "a4616102616204626262016363636303",
        "bafyreif4oyxqpgp553ycxww43bnzholwtncrtn73lp2j243vn4lwlrbobm",
    ),
    (1.5, "fb3ff8000000000000", "bafyreib2ir5ittexhu5d3zopo6wzsshuwi6byb3cdtp67bfopa2fkbpfcy"),
    ({"f": 1.5}, None, "bafyreie2nkbmuqct3ogd4ladzpat3zzcwnspq6ehsjwym5ak76oiakzwtu"),
]

DATASET_VECTORS = [
    (
        "atdata://local/sampleSchema/ImageSample@1.0.0",
        ["data/shard-{000000..000002}.tar"],
        "bafyreid2avy6ldjllnqxs2krqq7whcdlxt4cp2hopbzmso6msw5xr6a3iy",
    ),
    (
        "atdata://local/sampleSchema/TextSample@1.0.0",
        ["/data/text/train-{000000..000009}.tar"],
        "bafyreicxlz4mb5rmpvmm7qlo57w7kf5nvaatblfgcipei7hhv2afonfepq",
    ),
    (
        "local://schemas/__main__.ImageSample@1.0.0",
        ["s3://bucket/images/val-000000.tar"],
        "bafyreifzccyodhpaxk5q6hfbek3rxo4uv3yhtvhbg2qi4x5qaromzxbusi",
    ),
    (
        "atdata://local/sampleSchema/S@1.0.0",
        [],
        "bafyreiag5twhypmxsiqhlsig7j5gfrumbr7vfwekevk6cclk7apmwy6jxy",
    ),
    (
        "atdata://local/sampleSchema/S@1.0.0",
        [
            "s3://b/p/data--00000000-0000-0000-0000-000000000000--000000.tar",
            "s3://b/p/data--00000000-0000-0000-0000-000000000000--000001.tar",
        ],
        "bafyreibrdo7ame7otz3qeyz6qqedae7u7jet5fsy4hdsufvwt2w4hlw75a",
    ),
    (
        "atdata://local/sampleSchema/Ünïcode@2.1.0",
        ["file:///tmp/ü.tar"],
        "bafyreifa2xrowhipxtojg36httoj7wuhhqfyvzwjzkkzmpxj73jlzyyjaq",
    ),
    ("", [""], "bafyreif37ptkzq3yl6wlxwk25ozhwawscqjaoza4lciq26o5zw5ubpu4kq"),
]


@pytest.mark.parametrize(("data", "cbor_hex", "cid"), GENERIC_VECTORS)
def test_generic_vectors(data, cbor_hex, cid):
    if cbor_hex is not None:
        assert encode_dag_cbor(data).hex() == cbor_hex
    assert generate_cid(data) == cid
    assert verify_cid(cid, data)


@pytest.mark.parametrize(("schema_ref", "data_urls", "cid"), DATASET_VECTORS)
def test_dataset_vectors(schema_ref, data_urls, cid):
    assert dataset_cid(schema_ref, data_urls) == cid
    assert generate_cid({"schema_ref": schema_ref, "data_urls": data_urls}) == cid


def test_dataset_cbor_layout_matches_reference():
    cbor = encode_dag_cbor(
        {
            "schema_ref": "atdata://local/sampleSchema/ImageSample@1.0.0",
            "data_urls": ["data/shard-{000000..000002}.tar"],
        }
    )
    expected = (
        b"\xa2\x69data_urls\x81\x78\x1fdata/shard-{000000..000002}.tar"
        b"\x6aschema_ref\x78\x2datdata://local/sampleSchema/ImageSample@1.0.0"
    )
    assert cbor == expected


@pytest.mark.parametrize(
    "bad", [{1: "x"}, {"x": math.nan}, {"x": math.inf}, {"x": (1, 2)}, {"x": 2**64}, {1, 2}]
)
def test_unencodable_data_raises_atdata_value_error(bad):
    with pytest.raises(ValueError, match=r"^Failed to encode data as DAG-CBOR: "):
        generate_cid(bad)


def test_integer_bounds_and_negative_zero():
    assert encode_dag_cbor(2**64 - 1).hex() == "1bffffffffffffffff"
    assert encode_dag_cbor(-(2**64)).hex() == "3bffffffffffffffff"
    with pytest.raises(ValueError, match="Number out of range"):
        encode_dag_cbor(-(2**64) - 1)
    # libipld's quirk, which atdata's CIDs inherit.
    assert encode_dag_cbor(-0.0).hex() == "fb0000000000000000"


def test_key_order_is_length_first_then_bytewise():
    assert encode_dag_cbor({"é": 1, "z": 2, "ab": 3}) == bytes.fromhex("a3617a026261620362c3a901")


def test_shortest_heads():
    assert encode_dag_cbor(23).hex() == "17"
    assert encode_dag_cbor(24).hex() == "1818"
    assert encode_dag_cbor(256).hex() == "190100"
    assert encode_dag_cbor(65536).hex() == "1a00010000"
    assert encode_dag_cbor(2**32).hex() == "1b0000000100000000"
    assert encode_dag_cbor("a" * 24)[:2].hex() == "7818"


def test_parse_cid_round_trip():
    cid = generate_cid({"name": "test", "value": 42})
    parts = parse_cid(cid)
    assert parts["version"] == 1
    assert parts["codec"] == 0x71
    assert parts["hash"]["code"] == 0x12
    assert parts["hash"]["size"] == 32
    assert generate_cid_from_bytes(encode_dag_cbor({"name": "test", "value": 42})) == cid
    import hashlib

    assert parts["hash"]["digest"] == hashlib.sha256(bytes.fromhex(GENERIC_VECTORS[1][1])).digest()


@pytest.mark.parametrize("bad", ["", "not-a-cid", "Qm123", "b!!!!"])
def test_parse_cid_rejects_garbage(bad):
    with pytest.raises(ValueError, match="Invalid CID"):
        parse_cid(bad)


def test_verify_cid_false_for_other_data():
    cid = generate_cid({"a": 1})
    assert not verify_cid(cid, {"a": 2})


@given(
    st.dictionaries(
        st.text(),
        st.recursive(
            st.none() | st.booleans() | st.integers(-(2**64), 2**64 - 1) | st.text() | st.binary(),
            lambda inner: (
                st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4)
            ),
            max_leaves=10,
        ),
        max_size=5,
    )
)
def test_cid_is_stable_and_well_formed(data):
    cid = generate_cid(data)
    assert len(cid) == 59 and cid.startswith("bafyrei")
    # Insertion order never matters.
    assert generate_cid(dict(reversed(list(data.items())))) == cid
