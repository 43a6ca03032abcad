"""The fast shard reader: walks tar headers straight off a buffer, no ``tarfile`` objects.

:func:`scan_shard` yields the same samples as :func:`atdata_lite.shards.iter_shard` and
raises the same error types, with the same checks (end-of-archive marker, safe and unique
keys, expected sample count), at a fraction of the cost per member: a local shard is read
through a memory map (no copy into Python), a remote one in large buffered reads. Each
member's payload is a ``memoryview`` of that buffer.

It handles the tar that webdataset, atdata and atdata-lite write: ustar and GNU headers,
regular files and directories, GNU long names (``L``) and per-file PAX headers (``x``)
carrying a long or non-ASCII path. Anything else (global PAX headers, sparse files, links,
base-256 numbers, PAX size overrides...) raises :class:`Unsupported` *before* the member
it concerns is yielded; the caller then reads the shard again with ``iter_shard``, skipping
the samples already yielded, so users never see the difference.

Header checksums are checked exactly as tarfile checks them: with numpy for runs of
headers, and for a single header through ``zlib.adler32`` and ``int.from_bytes`` (the byte
sum modulo 65521 and modulo 255, which together fix it), about ten times cheaper than
summing the bytes in Python.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any
from zlib import adler32

import numpy as np

from .errors import CorruptShardError, TruncatedShardError
from .samples import is_valid_key

__all__ = ["Run", "Unsupported", "scan_shard"]

_BLOCK = 512
# As iter_shard: more than this after the end-of-archive marker is not a shard.
MAX_TRAILING = 4 << 20
_ZERO_BLOCK = bytes(_BLOCK)
# webdataset's skip_meta: members such as "__index__" are shard metadata, not samples.
META_MEMBER = re.compile(r"__[^/]*__($|/)")
_PAX_RECORD = re.compile(rb"(\d+) ([^=\n]+)=")
# Per-file PAX keys that change nothing the reader looks at (times, owners, comments).
_PAX_IGNORED = frozenset(
    {b"mtime", b"atime", b"ctime", b"uid", b"gid", b"uname", b"gname", b"comment"}
)

Refill = Callable[[bytes, int, int], tuple[bytes, int, int]]


class Unsupported(Exception):
    """The shard uses a tar feature this reader leaves to the general one.

    Raised out of :func:`scan_shard` with ``yielded``: the number of samples it had
    yielded (the general reader's restart skips them).
    """

    yielded = 0


def _octal(field: bytes) -> int:
    """tarfile's ``nti`` for octal fields (ValueError where it fails); base-256 numbers are
    left to tarfile."""
    if field[:1] in (b"\x80", b"\xff"):
        raise Unsupported("base-256 number")
    text = field.split(b"\x00", 1)[0].strip()
    return int(text, 8) if text else 0


def _byte_sum(block: bytes) -> int:
    """The exact sum of a header's bytes, without a Python loop over them.

    ``adler32`` gives the sum modulo 65521 and ``int.from_bytes`` modulo 255 (256 is 1
    modulo 255); a 512-byte header sums to at most 130,560, so the two fix it.
    """
    low = ((adler32(block) & 0xFFFF) - 1) % 65521
    return low if low % 255 == int.from_bytes(block, "little") % 255 else low + 65521


def _checksum_ok(block: bytes) -> bool:
    try:
        stored = _octal(block[148:156])
    except ValueError:  # tarfile: an invalid header
        return False
    # the unsigned sum with the checksum field counted as spaces
    if _byte_sum(block) - sum(block[148:156]) + 256 == stored:
        return True
    # tarfile also accepts the (historic) signed sum: compute it exactly, rarely needed
    signed = sum(b - 256 if b > 127 else b for b in block[:148] + block[156:]) + 256
    return signed == stored


def _canonical(width: int) -> bytes:
    # digits, then terminators (NUL or space): what tarfile and GNU tar write
    return b"(?:" + b"|".join(b"[0-7]{%d}[ \x00]{%d}" % (d, width - d) for d in range(width)) + b")"


# mode, uid, gid (8 bytes each), size, mtime (12), checksum (8); device major, minor (8)
_CANONICAL_NUMBERS = re.compile(b"".join(_canonical(w) for w in (8, 8, 8, 12, 12, 8)))
_CANONICAL_DEVICES = re.compile(_canonical(8) * 2)
_NUMBER_FIELDS = (
    (100, 108),
    (108, 116),
    (116, 124),
    (124, 136),
    (136, 148),
    (329, 337),
    (337, 345),
)


def _numbers_ok(block: bytes) -> bool:
    """tarfile's own reading of the numeric fields (``nti``): False where it fails."""
    for start, stop in _NUMBER_FIELDS:
        try:
            _octal(block[start:stop])
        except ValueError:
            return False
    return True


def _name(field: bytes) -> str:
    return field.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")


def _pax_path(data: bytes) -> str | None:
    """The ``path`` of a per-file PAX header, or None; Unsupported for anything else."""
    path = None
    pos = 0
    while pos < len(data):
        match = _PAX_RECORD.match(data, pos)
        if match is None:
            if data[pos:].strip(b"\x00"):
                raise Unsupported("pax record")
            break
        length = int(match.group(1))
        end = match.start(1) + length
        if length == 0 or end > len(data) or data[end - 1 : end] != b"\n":
            raise Unsupported("pax record")
        keyword = match.group(2)
        value = data[match.end() : end - 1]
        if keyword == b"path":
            try:
                path = value.decode("utf-8")
            except UnicodeDecodeError:
                raise Unsupported("pax path encoding") from None
        elif keyword not in _PAX_IGNORED:
            raise Unsupported(f"pax keyword {keyword!r}")
        pos = end
    return path


# --- many plain headers at once ---------------------------------------------------------

_BULK_MAX = 4096  # headers checked per numpy pass
_RELEASE_STEP = 32 << 20  # how often a memory-mapped shard's read part is released
# the value and the digit sum of six octal checksum digits (one product for both)
_CHECKSUM_WEIGHTS = np.stack([8 ** np.arange(5, -1, -1), np.ones(6, dtype=np.int64)], axis=1)
_UNIFORM_MIN = 16  # members of one size class found at once, when at least this many


# The header bytes read as numbers, side by side: mode, uid, gid, size, mtime and checksum
# (bytes 100-155), then the two device numbers (329-344). Where each field starts among them:
_FIELD_STARTS = (8, 16, 24, 36, 48, 56, 64)
_SIZE_END = 35  # the byte after the size's eleven digits (135)
_CHECKSUM = 48  # the checksum's six digits, then a NUL and a space (148-155)


def _odd_bytes(heads: np.ndarray) -> np.ndarray:
    """Per header and number byte (see :data:`_FIELD_STARTS`): True where the byte breaks
    the canonical form tarfile and GNU tar write, which the one-header path reads alike.

    That form: every field is octal digits then NULs or spaces (no digit after a NUL or
    space), the size's digits end at byte 135 with a NUL or space, and the checksum is six
    digits then a NUL and a space. (Byte arithmetic, not a lookup table: a table lookup
    per byte would cost more than the rest of the scan.)
    """
    fields = np.concatenate((heads[:, 100:156], heads[:, 329:345]), axis=1)
    digit = (fields - np.uint8(48)) < 8  # b"0".."7" (the subtraction wraps below "0")
    blank = (fields == 0) | (fields == 32)
    odd = ~(digit | blank)
    rising = digit[:, 1:] & blank[:, :-1]
    rising[:, [s - 1 for s in _FIELD_STARTS]] = False  # a new field may start with a digit
    odd[:, 1:] |= rising
    odd[:, _SIZE_END] |= digit[:, _SIZE_END]
    odd[:, _CHECKSUM : _CHECKSUM + 6] |= blank[:, _CHECKSUM : _CHECKSUM + 6]
    odd[:, _CHECKSUM + 6] |= fields[:, _CHECKSUM + 6] != 0
    odd[:, _CHECKSUM + 7] |= fields[:, _CHECKSUM + 7] != 32
    return odd  # type: ignore[no-any-return]


def _run_positions(
    buf: Any, rows: np.ndarray, pos: int, end: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Header positions (in blocks), headers and sizes of the run of candidate members at
    ``pos``.

    A candidate is a regular file (type ``0``) whose size is eleven octal digits and whose
    data lies whole inside ``buf``; the run stops before the first member that is not (it
    is also bounded in count and span, so releases of a mapped shard keep up).

    Members of one size class (the same number of data blocks, as fixed-shape samples
    are) are found all at once: the first member's stride is assumed and checked for the
    whole run, and their headers are a strided view of ``rows`` (read in place, never
    copied: a copy of thousands of headers would push what the reader's consumer holds
    out of the CPU caches). Otherwise headers are walked one by one.
    """
    span = min(end, pos + _RELEASE_STEP) - pos
    first = pos // _BLOCK
    if buf[pos + 156] == 0x30:
        try:
            size = int(buf[pos + 124 : pos + 135], 8)
        except ValueError:
            size = -1
        stride = 1 + ((size + 511) >> 9)
        room = min(_BULK_MAX, span // (stride * _BLOCK)) if size >= 0 else 0
        if room >= _UNIFORM_MIN:
            which = first + stride * np.arange(room)
            heads = rows[first : first + stride * (room - 1) + 1 : stride]
            digits = heads[:, 124:135] - np.uint8(48)  # octal digits are 0-7, the rest more
            sizes = digits[:, 0].astype(np.int64)
            for column in range(1, 11):
                sizes <<= 3
                sizes += digits[:, column]
            same = (heads[:, 156] == 0x30) & (((sizes + 511) >> 9) == stride - 1)
            octal = digits < 8
            if not (same.all() and octal.all()):
                same &= octal.all(axis=1)
            n = room if same.all() else int(np.argmin(same))
            if n >= _UNIFORM_MIN:
                return which[:n], heads[:n], sizes[:n]
    positions: list[int] = []
    sizes_list: list[int] = []
    p = pos
    limit = min(end - _BLOCK, pos + span)
    room = _BULK_MAX
    while p <= limit and room:
        if buf[p + 156] != 0x30:
            break
        try:
            size = int(buf[p + 124 : p + 135], 8)
        except ValueError:
            break
        if size < 0 or p + _BLOCK + size > end:
            break
        positions.append(p >> 9)
        sizes_list.append(size)
        p += _BLOCK + ((size + 511) & ~511)
        room -= 1
    which = np.asarray(positions, dtype=np.int64)
    return which, rows[which], np.asarray(sizes_list, dtype=np.int64)


class _PlainNames:
    """The names of a run of headers, all plain (see :func:`_names`), as one text: each
    name followed by a newline or, when ``keys_only``, each key (every name being the key
    then ``.msgpack``)."""

    __slots__ = ("keys_only", "text")

    def __init__(self, text: str, keys_only: bool) -> None:
        self.text, self.keys_only = text, keys_only

    def split(self) -> list[str]:
        """The names, one by one."""
        lines = self.text[:-1].split("\n")
        return [key + ".msgpack" for key in lines] if self.keys_only else lines


_MSGPACK = np.frombuffer(b".msgpack", dtype=np.uint8)


def _names(heads: np.ndarray) -> _PlainNames | None:
    """The name fields of ``heads``, as tarfile reads them; None unless every name is plain:
    printable ASCII with no slash or backslash, and no byte after its first NUL. (Other
    names take the one-by-one path, which judges them.)"""
    fields = heads[:, :100]
    width = bytes(fields[0]).find(b"\x00") % 101  # the first name's length (100: no NUL)
    if width and fields[:, width - 1].all() and not fields[:, width:].any():
        # names of one length, the usual case: only their bytes are looked at
        return _names_of_one_width(fields[:, :width])
    lines = np.empty((len(heads), 101), dtype=np.uint8)  # each name, then room for a newline
    field = lines[:, :100]
    field[...] = fields
    lines[:, 100] = 0
    filled = field != 0
    # each name is its bytes, then NULs only (no byte after a NUL)
    if not filled[:, 0].all() or (filled[:, 1:] > filled[:, :-1]).any():
        return None
    if _odd_name_bytes(field, allow_nul=True):
        return None
    # a newline where each name ends, then the NULs left out
    lines[np.arange(len(lines)), filled.sum(axis=1, dtype=np.uint8)] = 10
    return _PlainNames(lines.tobytes().translate(None, b"\x00").decode("ascii"), keys_only=False)


def _names_of_one_width(names: np.ndarray) -> _PlainNames | None:
    """:func:`_names` for names that fill all ``names``' columns (no NUL among them)."""
    if _odd_name_bytes(names, allow_nul=False):
        return None
    n, width = names.shape
    if (
        width > 8
        and (names[:, width - 8 :] == _MSGPACK).all()
        and not (names[:, : width - 8] == 46).any()  # no other dot
    ):
        # every name is KEY.msgpack (the usual shard): the keys, cut at one width
        # (no such name is a metadata member: those end with "__")
        lines = np.empty((n, width - 7), dtype=np.uint8)
        lines[:, :-1] = names[:, : width - 8]
        lines[:, -1] = 10
        return _PlainNames(lines.tobytes().decode("ascii"), keys_only=True)
    lines = np.empty((n, width + 1), dtype=np.uint8)
    lines[:, :-1] = names
    lines[:, -1] = 10
    return _PlainNames(lines.tobytes().decode("ascii"), keys_only=False)


def _odd_name_bytes(names: np.ndarray, *, allow_nul: bool) -> bool:
    """Whether a byte of ``names`` is not printable ASCII (a NUL only if not ``allow_nul``),
    or is a slash or a backslash."""
    # printable ASCII is 32-126: less 32, it is 0-94 (the subtraction wraps below 32)
    outside = np.count_nonzero((names - np.uint8(32)) >= 95)
    if allow_nul:
        outside -= names.size - np.count_nonzero(names)
    return bool(outside) or bool((names == 47).any()) or bool((names == 92).any())


_LOW_BYTES = np.uint64(0x00FF00FF00FF00FF)
_SUM_ROWS = 256  # headers summed per pass: 128 KiB of scratch, which stays in the CPU cache


def _byte_sums(heads: np.ndarray) -> np.ndarray:
    """The unsigned byte sum of each 512-byte header, as int64.

    Eight bytes at a time: each header is read as 64 words, whose even and odd bytes are
    added in four 16-bit lanes (at most 64 * 510 = 32,640 each: no lane overflows), then
    the lanes. (A sum of bytes cast to wider integers costs twice as much; so do
    temporaries the size of the whole run, which leave the CPU cache.)
    """
    words = heads.view(np.uint64)
    low = np.empty((_SUM_ROWS, 64), dtype=np.uint64)
    high = np.empty((_SUM_ROWS, 64), dtype=np.uint64)
    total = np.empty(len(words), dtype=np.uint64)
    for start in range(0, len(words), _SUM_ROWS):
        part = words[start : start + _SUM_ROWS]
        lo, hi = low[: len(part)], high[: len(part)]
        np.bitwise_and(part, _LOW_BYTES, out=lo)
        np.right_shift(part, np.uint64(8), out=hi)
        np.bitwise_and(hi, _LOW_BYTES, out=hi)
        np.add(lo, hi, out=lo)
        lo.sum(axis=1, out=total[start : start + len(part)])
    total = (total & np.uint64(0xFFFFFFFF)) + (total >> np.uint64(32))
    return ((total & np.uint64(0xFFFF)) + (total >> np.uint64(16))).astype(np.int64)


def _bulk(
    buf: Any, pos: int, end: int
) -> tuple[_PlainNames | list[str], list[int], list[int], np.ndarray, int] | None:
    """The run of plain members starting at ``pos``, checked together; None if there is none.

    A plain member is a regular file (type ``0``) whose header is in the canonical form
    tarfile and GNU tar write (an 11-digit octal size ended by NUL or space, a six-digit
    octal checksum followed by NUL and space, no ustar prefix), lying whole inside ``buf``.
    The run stops before the first member that is not, which the one-header path then
    reads (and judges): what is accepted here is exactly what that path accepts.

    Returns:
        ``(names, data starts, data ends, data sizes, position after the run)``, the
        names as one text when they are plain (see :func:`_names`), else a list.
    """
    if pos + _BLOCK > end:
        return None
    rows = np.frombuffer(buf, dtype=np.uint8, count=(end // _BLOCK) * _BLOCK).reshape(-1, _BLOCK)
    which, heads, sizes = _run_positions(buf, rows, pos, end)
    if not len(which):
        return None
    odd = _odd_bytes(heads)
    # tarfile's checksum: the unsigned byte sum, the checksum field counted as eight spaces
    # (its six digits, a NUL and a space: 48 * 6 + 32 more than the digits)
    value, digit_sum = ((heads[:, 148:154] - np.uint8(48)) @ _CHECKSUM_WEIGHTS).T
    wrong = _byte_sums(heads) - digit_sum - 320 + 256 != value
    wrong |= heads[:, 345] != 0  # a ustar prefix
    if odd.any() or wrong.any():  # (per header only then: row by row costs more)
        n = int(np.argmax(odd.any(axis=1) | wrong))  # the first member that is not plain
        if n == 0:
            return None
        which, sizes, heads = which[:n], sizes[:n], heads[:n]
    names: _PlainNames | list[str] | None = _names(heads)
    starts_array = (which + 1) * _BLOCK
    if names is None:
        names = [
            buf[q : q + 100].split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
            for q in (which * _BLOCK).tolist()
        ]
    starts = starts_array.tolist()
    ends = (starts_array + sizes).tolist()
    return names, starts, ends, sizes, starts[-1] + ((int(sizes[-1]) + 511) & ~511)


def _plain_samples(
    names: _PlainNames, n: int, seen: set[str], expected_count: int | None, count: int
) -> tuple[list[str], list[str]] | None:
    """Keys and extensions when each of the ``n`` plain names is a new sample with a key,
    else None.

    None sends the names through the member-by-member checks, which group members of one
    sample, skip metadata members and raise, at the right sample, what is wrong (so a
    check here may refuse more than it must, never less).
    """
    text = names.text
    # (a name comes from a 100-byte header field: no key is longer than a key may be)
    if names.keys_only:
        keys = text[:-1].split("\n")
        exts = ["msgpack"] * n
    elif "\n__" in text or text[:2] == "__":
        return None  # metadata members
    elif text.count(".") == n and text.count(".msgpack\n") == n:
        # every name is KEY.msgpack: the keys in one split
        if text[:8] == ".msgpack" or "\n.msgpack" in text:
            return None  # an empty key
        keys = text[:-9].split(".msgpack\n")
        exts = ["msgpack"] * n
    else:
        lines = text[:-1].split("\n")
        dots = [name.find(".") for name in lines]
        if min(dots) <= 0:
            return None  # a name without a dot or a key
        keys = [name[:dot] for name, dot in zip(lines, dots, strict=True)]
        exts = [name[dot + 1 :].lower() for name, dot in zip(lines, dots, strict=True)]
    unique = set(keys)
    if len(unique) != n or not unique.isdisjoint(seen):
        return None
    if expected_count is not None and count + n > expected_count:
        return None
    return keys, exts


class Run:
    """Consecutive one-member samples: sample ``i`` is ``keys[i]`` with the member
    ``exts[i]``, whose payload is ``view[starts[i]:ends[i]]``. ``nbytes`` is the payloads'
    total size, ``largest`` the largest one's."""

    __slots__ = ("ends", "exts", "keys", "largest", "nbytes", "starts", "view")

    def __init__(
        self,
        keys: list[str],
        exts: list[str],
        starts: list[int],
        ends: list[int],
        view: memoryview,
        sizes: np.ndarray,
    ) -> None:
        self.keys, self.exts, self.starts, self.ends, self.view = keys, exts, starts, ends, view
        self.nbytes = int(sizes.sum())
        self.largest = int(sizes.max())

    def only(self, ext: str) -> bool:
        """Whether every sample's member has the extension ``ext``."""
        return self.exts.count(ext) == len(self.exts)

    def samples(self) -> Iterator[tuple[str, dict[str, memoryview]]]:
        """``(key, {ext: payload})`` per sample, as :func:`scan_shard` yields them."""
        view = self.view
        for key, ext, start, end in zip(self.keys, self.exts, self.starts, self.ends, strict=True):
            yield key, {ext: view[start:end]}


def _truncated(url: str, detail: str) -> TruncatedShardError:
    return TruncatedShardError(
        f"Truncated shard {url}: {detail}. Re-create it, or read with on_shard_error='skip' "
        "to skip it."
    )


def _corrupt(url: str, detail: str) -> CorruptShardError:
    return CorruptShardError(
        f"Corrupt shard {url}: {detail}. Re-create it, or read with on_shard_error='skip' "
        "to skip it."
    )


def bad_key_error(url: str, name: str, key: str) -> CorruptShardError:
    return CorruptShardError(
        f"Corrupt shard {url}: member {name!r} has the sample key {key!r}, which is not a "
        "safe key (keys may not be empty or contain '/', '\\', '.', or control characters; "
        "it could otherwise become an odd file name when the sample is copied). The shard "
        "was not written by atdata or atdata-lite."
    )


def duplicate_key_error(url: str, key: str, detail: str) -> CorruptShardError:
    return CorruptShardError(
        f"Corrupt shard {url}: the sample key {key!r} appears twice ({detail}). Each sample "
        "needs its own key; re-create the shard."
    )


def count_error(url: str, expected: int, found: str) -> CorruptShardError:
    return CorruptShardError(
        f"Corrupt shard {url}: it holds {found} samples, but the index recorded {expected}. "
        "The file changed after it was indexed: re-create it (or re-add the dataset), or "
        "read with on_shard_error='skip' to skip it."
    )


def scan_shard(
    buf: Any,
    url: str,
    *,
    expected_count: int | None = None,
    refill: Refill | None = None,
    release: Callable[[int], None] | None = None,
    runs: bool = False,
) -> Iterator[tuple[str, dict[str, memoryview]] | Run]:
    """Yield ``(key, {ext: payload})`` for each sample of one uncompressed tar shard.

    Args:
        buf: The shard's bytes (a memory map or ``bytes``), or its first part when
            ``refill`` is given.
        url: The shard's URL, for error messages.
        expected_count: The number of samples the shard must hold, or None.
        refill: For a streamed shard: ``refill(buf, pos, need)`` returns ``(buf, pos,
            end)`` with at least ``need`` bytes after ``pos`` unless the shard ends first
            (``buf`` may be a new buffer starting at the old ``pos``).
        release: Called now and then with a position every sample before which has been
            yielded (a memory map drops those pages from the process; see
            :mod:`atdata_lite._shardread`).
        runs: Yield a :class:`Run` for each stretch of one-member samples checked
            together, instead of a pair per sample (for a caller with a loop of its own).

    Raises:
        Unsupported: A tar feature left to ``iter_shard`` (before the sample it affects).
        TruncatedShardError / CorruptShardError: As ``iter_shard`` raises them.
    """
    view = memoryview(buf)
    end = len(buf)
    pos = 0
    current_key: str | None = None
    current: dict[str, memoryview] = {}
    seen: set[str] = set()
    count = 0
    override: str | None = None  # the next member's name from an L or x header
    extended = False  # the previous header was an L or x header
    zero, meta, valid_key = _ZERO_BLOCK, META_MEMBER.match, is_valid_key
    released = 0
    try:
        while True:
            if release is not None and pos - released >= _RELEASE_STEP:
                release(pos)
                released = pos
            bulk = _bulk(buf, pos, end) if not extended and override is None else None
            if bulk is not None:
                names, starts, ends, sizes, pos = bulk
                plain = (
                    _plain_samples(names, len(starts), seen, expected_count, count)
                    if type(names) is _PlainNames
                    else None
                )
                if plain is not None:  # one member per sample, nothing to check one by one
                    keys, exts = plain
                    if current_key is not None:
                        yield current_key, current
                    seen.update(keys)
                    count += len(keys)
                    last = len(keys) - 1
                    if runs and last:
                        yield Run(
                            keys[:last], exts[:last], starts[:last], ends[:last], view, sizes[:last]
                        )
                    else:
                        for i in range(last):
                            yield keys[i], {exts[i]: view[starts[i] : ends[i]]}
                    current_key = keys[last]
                    current = {exts[last]: view[starts[last] : ends[last]]}
                    continue
                if isinstance(names, _PlainNames):
                    names = names.split()
            else:
                if pos + _BLOCK > end and refill is not None:
                    buf, pos, end = refill(buf, pos, _BLOCK)
                    view = memoryview(buf)
                block = buf[pos : pos + _BLOCK]
                if extended and (
                    not block or block == zero or (len(block) == _BLOCK and not _checksum_ok(block))
                ):
                    # tarfile: the header after a long-name or PAX header must be a good one
                    raise _corrupt(
                        url, f"missing or bad header after the extended header at byte {pos}"
                    )
                if len(block) < _BLOCK:
                    if not block and pos == 0:
                        raise _truncated(url, "the data ends early (empty file)")
                    raise _truncated(
                        url, f"no end-of-archive marker (the samples after byte {pos} are missing)"
                    )
                if block == zero:
                    break
                # mode, ids, size, mtime, checksum; device numbers: octal (else tarfile decides)
                if not (
                    _CANONICAL_NUMBERS.fullmatch(block, 100, 156)
                    and _CANONICAL_DEVICES.fullmatch(block, 329, 345)
                ) and not (_numbers_ok(block) and _checksum_ok(block)):
                    raise _corrupt(url, f"unreadable member header at byte {pos}")
                field = block[148:156]
                # the unsigned byte sum with the checksum field counted as spaces
                if _byte_sum(block) + 256 - sum(field) != int(
                    field.split(b"\x00", 1)[0].strip() or b"0", 8
                ) and not _checksum_ok(block):
                    raise _corrupt(url, f"unreadable member header at byte {pos}")
                extended = False
                size = int(block[124:136].split(b"\x00", 1)[0].strip() or b"0", 8)
                flag = block[156]
                data_start = pos + _BLOCK
                data_end = data_start + size
                next_pos = data_start + ((size + 511) & ~511)
                if data_end > end and refill is not None:
                    buf, shift, end = refill(buf, pos, next_pos - pos)
                    view = memoryview(buf)
                    data_start += shift - pos
                    data_end += shift - pos
                    next_pos += shift - pos
                    pos = shift
                if data_end > end:
                    if flag in (0x4C, 0x78):  # L, x
                        raise _corrupt(
                            url, f"missing or bad header after the extended header at byte {pos}"
                        )
                    raise _truncated(
                        url, f"the data ends early (a member at byte {pos} is cut short)"
                    )
                if flag == 0x30 or flag == 0:  # "0", NUL: a regular file
                    if override is None:
                        name = block[:100].split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
                        if block[345]:
                            name = f"{_name(block[345:500])}/{name}"
                    else:
                        name = override
                        override = None
                    if flag == 0 and name[-1:] == "/":
                        if size:
                            raise Unsupported("directory with data")
                        pos = next_pos  # a V7 directory
                        continue
                elif flag == 0x35 and size == 0:  # "5": a directory
                    override = None
                    pos = next_pos
                    continue
                elif flag == 0x4C:  # "L": the next member's long name
                    override = _name(bytes(view[data_start:data_end]))
                    extended = True
                    pos = next_pos
                    continue
                elif flag == 0x78:  # "x": per-file PAX header
                    path = _pax_path(bytes(view[data_start:data_end]))
                    override = path if path is not None else override
                    extended = True
                    pos = next_pos
                    continue
                else:
                    raise Unsupported(f"member type {chr(flag)!r}")
                names, starts, ends = [name], [data_start], [data_end]
                pos = next_pos
            for name, data_start, data_end in zip(names, starts, ends, strict=True):
                # webdataset's base_plus_ext: the key is all before the basename's first dot
                slash = name.rfind("/")
                dot = name.find(".", slash + 1)
                if dot <= slash + 1 or (name[:2] == "__" and meta(name)):
                    if dot == slash + 1:
                        raise bad_key_error(url, name, "")  # ".msgpack": no key
                    continue
                key = name[:dot]
                ext = name[dot + 1 :].lower()
                if key != current_key:
                    if current_key is not None:
                        yield current_key, current
                    if key in seen:
                        raise duplicate_key_error(url, key, f"member {name!r}")
                    if not valid_key(key):
                        raise bad_key_error(url, name, key)
                    seen.add(key)
                    count += 1
                    if expected_count is not None and count > expected_count:
                        raise count_error(url, expected_count, f"more than {expected_count}")
                    current_key = key
                    current = {}
                elif ext in current:
                    raise duplicate_key_error(url, key, f"two {name!r} members")
                current[ext] = view[data_start:data_end]
    except Unsupported as exc:
        # what was yielded so far, for the general reader's restart to skip
        exc.yielded = count - (current_key is not None)
        raise
    # The end-of-archive marker: the rest must be zeros, at least two blocks, whole blocks.
    marker = pos
    if refill is not None:
        buf, pos, end = refill(buf, pos, MAX_TRAILING + 1)  # everything that is left
        view = memoryview(buf)
    if end - pos > MAX_TRAILING:
        raise CorruptShardError(
            f"Corrupt shard {url}: more than {MAX_TRAILING >> 20} MiB of data after the "
            "end-of-archive marker; this is not a shard (a device or an endless stream?)."
        )
    rest = bytes(view[pos:end])
    size_after = len(rest)
    if rest.strip(b"\x00") and size_after >= _BLOCK:
        raise _corrupt(url, f"unreadable member header at byte {marker}")
    if rest.strip(b"\x00") or size_after < 2 * _BLOCK or (marker + size_after) % _BLOCK:
        raise _truncated(
            url, f"no end-of-archive marker (the samples after byte {marker} are missing)"
        )
    if current_key is not None:
        yield current_key, current
    if expected_count is not None and count != expected_count:
        raise count_error(url, expected_count, str(count))
