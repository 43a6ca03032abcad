"""The sample shuffle buffer of :meth:`Dataset.shuffled`, bounded in samples and in bytes.

The reader hands the buffer groups of undecoded samples (a run of a shard at a time; see
:data:`Group`); the buffer yields samples, decoded as they leave it. It holds payloads only
(``bytes``, or views of large ones), which the garbage collector never scans.

The order for a seed is the classic shuffle buffer's: until the buffer holds
``bufsize`` samples it fills; then each new sample takes the place of a random one
(``random.Random.randrange`` over the buffer), which leaves. When the byte bound is reached
first, random samples leave until the buffer is under it again (at least one is always
kept, however large). At the end, what is left leaves in a random order
(``random.Random.shuffle``). The same seed gives the same order on every run and every
supported Python.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import webdataset as wds

from .errors import SampleDecodeError

__all__ = ["Group", "ItemDecoder", "KeyedDecoder", "ShuffleBuffer", "name_error", "stream_rng"]

#: What the reader hands the buffer: ``(payloads, keys, url, nbytes)``: the payloads of
#: consecutive samples of the shard ``url`` (a list, or an iterator that copies each one as
#: it is taken), their keys, and the payload bytes of them all (or more: an upper bound).
Group = tuple[Iterable[Any], Sequence[str], str, int]
#: ``decode(payload, key, url)``: a sample, its errors naming the shard and the key.
ItemDecoder = Callable[[Any, str, str], Any]
#: ``decode(payload, key)``: a plain sample with its key set (errors not yet named).
KeyedDecoder = Callable[[Any, str], Any]


def stream_rng(seed: int | None, stage: str) -> random.Random:
    """The random stream of one shuffling stage (``"shards"`` or ``"samples"``).

    Without a seed, a fresh unseeded one. With a seed, the same seed gives the same order
    on every run; each node and worker gets its own stream, so that they do not all make
    the same choices.
    """
    if seed is None:
        return random.Random()
    rank, world, worker, workers = wds.utils.pytorch_worker_info()
    return random.Random(f"{seed}/{stage}/{rank}/{world}/{worker}/{workers}")


def name_error(exc: SampleDecodeError, url: str, key: str) -> None:
    """Make ``exc`` name the shard and the sample (it keeps its class: a
    SampleMismatchError stays a TypeError)."""
    exc.args = (f"Shard {url}, sample {key!r}: {exc}",)
    exc.shard, exc.key = url, key  # type: ignore[attr-defined]


def _as_is(payload: Any, key: str, url: str) -> tuple[Any, str, str]:
    return payload, key, url


class ShuffleBuffer:
    """A pipeline stage: groups of undecoded samples in, shuffled samples out.

    Args:
        bufsize: Most samples held.
        seed: The seed of the order (None: a fresh random one each time).
        max_bytes: Most payload bytes held (at least one sample is always held).
        decoders: Called once per iteration (in the reading process: a bound method of
            the reader pickles, a closure would not): ``(decode, keyed)``, where
            ``decode(payload, key, url)`` decodes a sample as it leaves and ``keyed``, or
            None, does the same for a plain sample type without naming the shard in its
            errors (the buffer names it). None yields ``(payload, key, url)`` as is.

    A sample that cannot be decoded raises when it leaves the buffer, naming its shard and
    key.
    """

    def __init__(
        self,
        bufsize: int,
        seed: int | None,
        max_bytes: int,
        decoders: Callable[[], tuple[ItemDecoder, KeyedDecoder | None]] | None = None,
    ) -> None:
        if bufsize < 1:
            raise ValueError(f"buffer_samples must be a positive integer, got {bufsize}.")
        if max_bytes < 1:
            raise ValueError(f"buffer_bytes must be a positive number of bytes, got {max_bytes}.")
        self.bufsize = bufsize
        self.seed = seed
        self.max_bytes = max_bytes
        self.decoders = decoders

    def __call__(self, groups: Iterable[Group]) -> Iterator[Any]:
        rng = stream_rng(self.seed, "samples")
        getrandbits, randrange = rng.getrandbits, rng.randrange
        decode: ItemDecoder = _as_is
        keyed: KeyedDecoder | None = None
        if self.decoders is not None:
            decode, keyed = self.decoders()
        bufsize, max_bytes = self.bufsize, self.max_bytes
        # randrange(bufsize) inline, as CPython draws it: bits (as many as bufsize has)
        # until they are below bufsize; tests hold the order to randrange's
        bits = bufsize.bit_length()
        # three parallel lists: no container per sample
        payloads: list[Any] = []
        names: list[str] = []
        urls: list[str] = []
        held = 0  # payload bytes in the buffer; an upper bound of them when not `exact`
        exact = True
        for group, keys, url, nbytes in groups:
            if len(payloads) == bufsize and held + nbytes <= max_bytes:
                # Full, and this group cannot take the buffer over its byte bound: each
                # sample takes the place of a random one, with no byte count per sample
                # (`held` grows by the group's bytes: an upper bound).
                held += nbytes
                exact = False
                if keyed is None:
                    for payload, key in zip(group, keys, strict=True):
                        i = getrandbits(bits)
                        while i >= bufsize:
                            i = getrandbits(bits)
                        out, out_key, out_url = payloads[i], names[i], urls[i]
                        payloads[i], names[i], urls[i] = payload, key, url
                        yield decode(out, out_key, out_url)
                    continue
                # The same loop with the plain decoder called directly (one Python call
                # less per sample), its errors named here.
                out_key = out_url = ""
                try:
                    for payload, key in zip(group, keys, strict=True):
                        i = getrandbits(bits)
                        while i >= bufsize:
                            i = getrandbits(bits)
                        out, out_key, out_url = payloads[i], names[i], urls[i]
                        payloads[i], names[i], urls[i] = payload, key, url
                        yield keyed(out, out_key)
                except SampleDecodeError as exc:
                    name_error(exc, out_url, out_key)
                    raise
                continue
            if not exact:
                held = sum(map(len, payloads))
                exact = True
            # Filling, or near the byte bound: sample by sample.
            for payload, key in zip(group, keys, strict=True):
                size = len(payload)
                if len(payloads) < bufsize and (held + size <= max_bytes or not payloads):
                    payloads.append(payload)
                    names.append(key)
                    urls.append(url)
                    held += size
                    continue
                i = randrange(len(payloads))
                out, out_key, out_url = payloads[i], names[i], urls[i]
                payloads[i], names[i], urls[i] = payload, key, url
                held += size - len(out)
                yield decode(out, out_key, out_url)
                while held > max_bytes and len(payloads) > 1:
                    i = randrange(len(payloads))
                    last = len(payloads) - 1
                    payloads[i], payloads[last] = payloads[last], payloads[i]
                    names[i], names[last] = names[last], names[i]
                    urls[i], urls[last] = urls[last], urls[i]
                    out = payloads.pop()
                    held -= len(out)
                    yield decode(out, names.pop(), urls.pop())
        order = list(range(len(payloads)))
        rng.shuffle(order)
        for i in order:
            yield decode(payloads[i], names[i], urls[i])
