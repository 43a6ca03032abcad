"""Content identifiers (CIDs), byte-identical to atdata's, without libipld.

atdata computes an entry's CID as: DAG-CBOR encoding -> SHA-256 -> CIDv1 (codec dag-cbor,
multihash sha2-256) -> multibase base32 lower-case without padding (``b...``). The encoder
below is the small subset of DAG-CBOR that atdata's data can contain (maps with text keys,
lists, text, bytes, ints, floats, bools, None) and follows libipld's rules, including its
quirks (``-0.0`` encodes as ``+0.0``; tuples are refused).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import struct
from typing import Any

__all__ = [
    "dataset_cid",
    "encode_dag_cbor",
    "generate_cid",
    "generate_cid_from_bytes",
    "parse_cid",
    "verify_cid",
]

# CIDv1, codec dag-cbor (0x71), multihash sha2-256 (0x12) of 32 bytes. Every value is below
# 0x80, so each varint is a single byte.
_CID_PREFIX = bytes([0x01, 0x71, 0x12, 0x20])
_DAG_CBOR = 0x71
_SHA2_256 = 0x12

_MAX_UINT64 = 2**64 - 1


class _EncodeError(ValueError):
    """Raised inside the encoder; re-raised with atdata's message by :func:`generate_cid`."""


def _head(major: int, n: int) -> bytes:
    # Shortest-form argument, as DAG-CBOR requires.
    if n < 24:
        return bytes([(major << 5) | n])
    if n < 0x100:
        return bytes([(major << 5) | 24, n])
    if n < 0x10000:
        return bytes([(major << 5) | 25]) + n.to_bytes(2, "big")
    if n < 0x100000000:
        return bytes([(major << 5) | 26]) + n.to_bytes(4, "big")
    return bytes([(major << 5) | 27]) + n.to_bytes(8, "big")


def _encode(value: Any, out: bytearray) -> None:
    # bool before int: bool is an int subclass.
    if value is None:
        out.append(0xF6)
    elif value is True:
        out.append(0xF5)
    elif value is False:
        out.append(0xF4)
    elif isinstance(value, int):
        if value >= 0:
            if value > _MAX_UINT64:
                raise _EncodeError("Number out of range")
            out += _head(0, value)
        else:
            n = -1 - value
            if n > _MAX_UINT64:
                raise _EncodeError("Number out of range")
            out += _head(1, n)
    elif isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise _EncodeError("Number out of range")
        # libipld writes -0.0 as +0.0; atdata's CIDs depend on it.
        out.append(0xFB)
        out += struct.pack(">d", 0.0 if value == 0.0 else value)
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        out += _head(3, len(raw))
        out += raw
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        out += _head(2, len(raw))
        out += raw
    elif isinstance(value, list):
        out += _head(4, len(value))
        for item in value:
            _encode(item, out)
    elif isinstance(value, dict):
        items = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise _EncodeError("Map keys must be strings")
            items.append((key.encode("utf-8"), item))
        # DAG-CBOR's canonical key order: length first, then bytewise.
        items.sort(key=lambda kv: (len(kv[0]), kv[0]))
        out += _head(5, len(items))
        for raw_key, item in items:
            out += _head(3, len(raw_key))
            out += raw_key
            _encode(item, out)
    else:
        # Tuples, sets and any other object: libipld reports "Unknown tag".
        raise _EncodeError(f"Unknown tag: cannot encode {type(value).__name__!r}")


def encode_dag_cbor(data: Any) -> bytes:
    """Encode ``data`` as DAG-CBOR, as libipld does.

    Args:
        data: ``None``, ``bool``, ``int`` (in [-2**64, 2**64-1]), finite ``float``, ``str``,
            ``bytes``, ``list`` and ``dict`` with ``str`` keys, nested freely.

    Returns:
        The canonical DAG-CBOR bytes.

    Raises:
        ValueError: ``"Failed to encode data as DAG-CBOR: ..."`` for anything else.
    """
    out = bytearray()
    try:
        _encode(data, out)
    except _EncodeError as exc:
        raise ValueError(f"Failed to encode data as DAG-CBOR: {exc}") from None
    except RecursionError as exc:
        raise ValueError(f"Failed to encode data as DAG-CBOR: {exc}") from None
    return bytes(out)


def generate_cid_from_bytes(data_bytes: bytes) -> str:
    """Return the CIDv1 (dag-cbor, sha2-256, base32) of already-encoded DAG-CBOR bytes.

    Args:
        data_bytes: DAG-CBOR bytes.

    Returns:
        A 59-character CID string starting with ``bafyrei``.
    """
    digest = hashlib.sha256(data_bytes).digest()
    encoded = base64.b32encode(_CID_PREFIX + digest).decode("ascii").lower().rstrip("=")
    return "b" + encoded


def generate_cid(data: Any) -> str:
    """Return atdata's CID of ``data``: DAG-CBOR, SHA-256, CIDv1, base32.

    Args:
        data: A value :func:`encode_dag_cbor` accepts.

    Returns:
        A 59-character CID string starting with ``bafyrei``.

    Raises:
        ValueError: ``data`` cannot be encoded as DAG-CBOR (non-string map keys, NaN or
            infinite floats, tuples, integers outside 64 bits, other objects).
    """
    return generate_cid_from_bytes(encode_dag_cbor(data))


def verify_cid(cid: str, data: Any) -> bool:
    """Return True when ``cid`` is the CID of ``data``.

    Raises:
        ValueError: ``data`` cannot be encoded as DAG-CBOR.
    """
    return generate_cid(data) == cid


def parse_cid(cid: str) -> dict[str, Any]:
    """Decode a base32 CIDv1 string into its parts, in libipld's shape.

    Args:
        cid: A CID string such as ``bafyrei...``.

    Returns:
        ``{"version": 1, "codec": 113, "hash": {"code": 18, "size": 32, "digest": b"..."}}``.

    Raises:
        InvalidCIDError: (a ``ValueError``) ``cid`` is not a base32 (``b``-prefixed) CIDv1
            string. The message starts with ``"Failed to decode CID"``, as atdata's (libipld's)
            does, followed by what is wrong.
    """
    from .errors import InvalidCIDError

    try:
        return _parse_cid(cid)
    except ValueError as exc:
        raise InvalidCIDError(f"Failed to decode CID: {exc}") from None


def _parse_cid(cid: str) -> dict[str, Any]:
    if not isinstance(cid, str) or not cid.startswith("b") or len(cid) < 2:
        raise ValueError(
            f"Invalid CID {cid!r}: expected a base32 CIDv1 string starting with 'b' "
            "(for example 'bafyrei...')."
        )
    body = cid[1:].upper()
    body += "=" * (-len(body) % 8)
    try:
        raw = base64.b32decode(body)
    except (ValueError, binascii.Error) as exc:
        raise ValueError(f"Invalid CID {cid!r}: not valid base32 ({exc}).") from None

    pos = 0

    def varint() -> int:
        nonlocal pos
        result = shift = 0
        while True:
            if pos >= len(raw):
                raise ValueError(f"Invalid CID {cid!r}: truncated varint.")
            byte = raw[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result
            shift += 7

    version = varint()
    if version != 1:
        raise ValueError(f"Invalid CID {cid!r}: version {version}, only CIDv1 is supported.")
    codec = varint()
    code = varint()
    size = varint()
    digest = raw[pos:]
    if len(digest) != size:
        raise ValueError(
            f"Invalid CID {cid!r}: digest is {len(digest)} bytes, the multihash says {size}."
        )
    return {
        "version": version,
        "codec": codec,
        "hash": {"code": code, "size": size, "digest": digest},
    }


def dataset_cid(schema_ref: str, data_urls: list[str]) -> str:
    """Return the CID of a dataset entry, as atdata's ``LocalDatasetEntry`` computes it.

    Only ``schema_ref`` and ``data_urls`` count; name and metadata do not.

    Args:
        schema_ref: The entry's schema reference, exactly as stored.
        data_urls: The entry's shard URLs, in order.

    Returns:
        The entry's CID.
    """
    return generate_cid({"schema_ref": schema_ref, "data_urls": list(data_urls)})
