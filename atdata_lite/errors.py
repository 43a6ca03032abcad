"""One exception hierarchy for atdata-lite.

Every error the library raises on purpose is an :class:`AtdataLiteError`. Each subclass
also subclasses the builtin exception that atdata 0.2 raised in the same situation
(``KeyError``, ``ValueError``, ``TypeError``, ``FileNotFoundError``, ...), so an
``except KeyError:`` written against atdata keeps working after the import swap.

Messages name the thing that was wrong and say what to do about it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

__all__ = [
    "AtdataLiteError",
    "BackendUnavailableError",
    "CacheFullError",
    "CorruptEntryError",
    "CorruptShardError",
    "DatasetExistsError",
    "DatasetNotFoundError",
    "FieldTypeError",
    "IndexCorruptError",
    "IndexDiskFullError",
    "IndexLockedError",
    "IndexOpenError",
    "IndexReadOnlyError",
    "IndexTooNewError",
    "IndexUnreachableError",
    "InvalidCIDError",
    "InvalidCredentialsError",
    "InvalidMetadataError",
    "InvalidNameError",
    "InvalidPrefixError",
    "InvalidSampleKeyError",
    "InvalidSchemaRefError",
    "InvalidVersionError",
    "LabelNotFoundError",
    "LensCheckError",
    "LensNotFoundError",
    "MigrationError",
    "NotAnIndexError",
    "NotPackableError",
    "OperationCancelled",
    "ReadAheadStalledError",
    "SampleDecodeError",
    "SampleMismatchError",
    "SchemaConflictError",
    "SchemaDecodeError",
    "SchemaNotFoundError",
    "ShardNotCachedError",
    "ShardNotFoundError",
    "ShardSkippedWarning",
    "TruncatedShardError",
    "UnknownBackendError",
    "UnsafeURLError",
    "UnsupportedFieldTypeError",
    "UntrustedLensError",
]


class AtdataLiteError(Exception):
    """Base class of every error raised on purpose by atdata-lite."""


class _PlainKeyError(KeyError):
    """A ``KeyError`` whose ``str()`` is the message itself, not its ``repr``.

    Args:
        message: What was not found, in atdata's words (code matches on it; ``args[0]``).
        hint: Builds the advice appended to the message (close matches among the stored
            names, what to run). It runs when the message is first read, not when the error
            is raised, so code that catches the error to test for existence never pays for
            the query behind it. A hint that fails leaves the message as it is.
    """

    def __init__(self, message: str = "", *, hint: Callable[[], str] | None = None) -> None:
        super().__init__(message)
        self._hint = hint
        self._text: str | None = None

    def __str__(self) -> str:
        if self._text is None:
            text = str(self.args[0]) if self.args else ""
            hint = self._hint
            self._hint = None
            if hint is not None:
                try:
                    extra = hint()
                except Exception:  # the index may be closed by now: the message stands alone
                    extra = ""
                if extra:
                    text = f"{text}. {extra}"
            self._text = text
        return self._text

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled (DataLoader workers) with the full message; the hint's closure is not.
        return (type(self), (str(self),))


# --- samples and shards -------------------------------------------------------------


class UnsupportedFieldTypeError(AtdataLiteError, TypeError):
    """A sample field has a type that cannot be serialised or described in a schema."""


class NotPackableError(AtdataLiteError, TypeError):
    """A class was given where a packable sample type (``@packable``) was required."""


class SampleDecodeError(AtdataLiteError, ValueError):
    """Bytes could not be decoded into a sample (bad msgpack, bad NPY array data, ...)."""


class SampleMismatchError(SampleDecodeError, TypeError):
    """Decoded data does not match the sample type: a missing or unknown field, or a value
    that is not of its field's declared type.

    Also a ``TypeError``, as atdata raised for a missing or unexpected field. Attributes:
    ``field`` (the field name, or ``None`` when several fields are involved).
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ShardNotFoundError(AtdataLiteError, FileNotFoundError):
    """A shard URL points at nothing."""


class UnsafeURLError(AtdataLiteError, ValueError):
    """A URL uses a scheme atdata-lite refuses to open (for example ``pipe:``)."""


class InvalidPrefixError(AtdataLiteError, ValueError):
    """A store prefix would escape the store's root or contains odd characters."""


class InvalidCredentialsError(AtdataLiteError, _PlainKeyError, ValueError):
    """S3 credentials lack a required key (atdata raised ``KeyError`` for a dict and
    ``ValueError`` for a ``.env`` file: this is both)."""


class InvalidCIDError(AtdataLiteError, ValueError):
    """A string is not a CID; the message starts with ``Failed to decode CID``, as atdata's."""


# --- schemas ------------------------------------------------------------------------


class InvalidSchemaRefError(AtdataLiteError, ValueError):
    """A schema reference is not ``atdata://local/sampleSchema/Name@x.y.z`` (or legacy)."""


class SchemaNotFoundError(AtdataLiteError, _PlainKeyError):
    """No schema is stored under the given name and version."""


class SchemaConflictError(AtdataLiteError, ValueError):
    """``name@version`` is already published with different content (versions are immutable)."""


class SchemaDecodeError(AtdataLiteError, ValueError):
    """A stored schema record cannot be turned back into a Python type."""


# --- datasets -----------------------------------------------------------------------


class DatasetNotFoundError(AtdataLiteError, _PlainKeyError):
    """No dataset entry has the given name (or CID)."""


class DatasetExistsError(AtdataLiteError, ValueError):
    """A dataset name, or the same content under another name, is already in the index."""


class InvalidVersionError(AtdataLiteError, ValueError):
    """A dataset or label version string cannot be used (empty, ``@``/``:`` in it, ...)."""


class LabelNotFoundError(AtdataLiteError, _PlainKeyError):
    """No label ``name@version`` (or ``name:label``) is in the index."""


# --- lenses -------------------------------------------------------------------------


class LensNotFoundError(AtdataLiteError, _PlainKeyError):
    """No stored lens has the given ref (``name@version``)."""


class LensCheckError(AtdataLiteError, ValueError):
    """A lens cannot be stored faithfully: stored as a field mapping it would lose its
    transform, and its code cannot be stored as an importable reference either."""


class UntrustedLensError(AtdataLiteError, ImportError):
    """A stored lens names code in a module that is not imported (nor declared trusted)."""


class CorruptEntryError(AtdataLiteError, _PlainKeyError, ValueError):
    """A stored dataset entry cannot be read (a required field is missing or undecodable).

    atdata raised ``KeyError`` (e.g. ``KeyError(b'name')``) for such a Redis hash.
    """


class InvalidMetadataError(AtdataLiteError, TypeError, ValueError):
    """Dataset metadata cannot be stored so that it reads back equal (sets, int keys, ...)."""


# --- opening an index ---------------------------------------------------------------


class IndexOpenError(AtdataLiteError, RuntimeError):
    """An index could not be opened."""


class NotAnIndexError(IndexOpenError):
    """The file or database is not an atdata-lite index; it was left untouched."""


class IndexTooNewError(IndexOpenError):
    """The index was written by a newer atdata-lite; upgrade atdata-lite to open it."""


class MigrationError(IndexOpenError):
    """Upgrading the index failed; the backup taken before the upgrade was kept."""


class IndexLockedError(IndexOpenError):
    """Another process held the index's migration lock for too long."""


class IndexUnreachableError(IndexOpenError):
    """The server behind an index (PostgreSQL, Redis) cannot be reached or stopped answering.

    Raised when opening the index and by any later call whose connection was refused, cut
    or silent for longer than the configured timeout. The message names the server and
    what to check. A write interrupted this way is either wholly stored or not at all;
    when the connection broke while the server was committing, look the entry up again to
    know which.
    """


class IndexCorruptError(IndexOpenError):
    """The index file is damaged; the message names it and its newest backup.

    ``atdata-lite db check`` says what is wrong and ``atdata-lite db recover`` rebuilds the
    index from a backup or from the rows that can still be read, keeping the damaged file.
    """


class IndexReadOnlyError(AtdataLiteError, PermissionError):
    """A write was asked of an index opened read-only (read-only media, or ``read_only=True``)."""


class IndexDiskFullError(AtdataLiteError, OSError):
    """The disk holding the index is full (or failed): the write was undone, nothing is lost."""


class UnknownBackendError(AtdataLiteError, ValueError):
    """No index backend is registered for a URL's scheme."""


class BackendUnavailableError(AtdataLiteError, ImportError):
    """A backend's optional dependency is not installed; the message gives the pip command."""


# --- appended by the data path --------------------------------------------------------


class InvalidSampleKeyError(AtdataLiteError, ValueError):
    """A caller-supplied sample key cannot name a tar member (``.``, ``/``, empty, ...)."""


class InvalidNameError(AtdataLiteError, ValueError):
    """A new name (dataset, schema, field) or shard URL holds a control character."""


# --- the shard cache and offline mode ----------------------------------------------------


class ShardNotCachedError(AtdataLiteError, FileNotFoundError):
    """Offline mode is on and a remote shard is not in the shard cache."""


class CacheFullError(AtdataLiteError, OSError):
    """A shard cannot be put in the shard cache (it does not fit in the budget)."""


class FieldTypeError(AtdataLiteError, TypeError):
    """A sample about to be written holds a value that does not match its field's type.

    Attributes: ``field`` (the field name), ``expected`` (what the field's annotation
    allows, e.g. ``"int"`` or ``"ndarray of dtype uint8"``), ``got`` (a short description of
    the value) and ``position`` (the sample's 0-based position in the input of
    ``write_samples``, or ``None`` outside it).
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        expected: str | None = None,
        got: str | None = None,
        position: int | None = None,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.expected = expected
        self.got = got
        self.position = position


class ReadAheadStalledError(AtdataLiteError, TimeoutError):
    """Reading shards ahead made no progress for longer than its stall timeout.

    The background reader was opening or reading a shard (the message names it and what it
    was doing) and nothing arrived for ``stall_timeout`` seconds: the storage behind it is not
    answering. Also a ``TimeoutError``. Check the network and the endpoint, raise the stall
    timeout when reads are only slow, or read without read-ahead.
    """


class ShardSkippedWarning(UserWarning):
    """A shard was skipped because it is missing or corrupt (``on_shard_error="skip"``).

    Turn it into an error with ``warnings.simplefilter("error", ShardSkippedWarning)``, or
    silence it with ``"ignore"``.
    """


# --- shard errors, defined on first use ---------------------------------------------------
# CorruptShardError subclasses tarfile.TarError (what atdata 0.7 code catches), but importing
# tarfile costs ~10 ms, and opening an index or running most CLI commands never needs it:
# the two classes are created when first looked up (module __getattr__, PEP 562).


def _define_shard_errors() -> dict[str, type]:
    import tarfile

    class CorruptShardError(AtdataLiteError, tarfile.TarError, ValueError):
        """A shard exists but is not a readable tar of msgpack samples.

        Also a ``tarfile.TarError`` (what atdata 0.7 code catches for a corrupt shard) and a
        ``ValueError``. Raised for a wrong format, a duplicate or unsafe sample key, a sample
        without a ``.msgpack`` member, and a sample count that differs from the one the
        index recorded for the shard.
        """

    class TruncatedShardError(CorruptShardError, EOFError):
        """A shard ends early: no end-of-archive marker, or a member cut short.

        Also an ``EOFError`` and, as a :class:`CorruptShardError`, a ``tarfile.TarError``.
        """

    classes: dict[str, type] = {
        "CorruptShardError": CorruptShardError,
        "TruncatedShardError": TruncatedShardError,
    }
    for name, cls in classes.items():
        cls.__module__ = __name__
        cls.__qualname__ = name
    return classes


if TYPE_CHECKING:
    import tarfile

    class CorruptShardError(AtdataLiteError, tarfile.TarError, ValueError): ...

    class TruncatedShardError(CorruptShardError, EOFError): ...


def __getattr__(name: str) -> Any:
    if name in ("CorruptShardError", "TruncatedShardError"):
        globals().update(_define_shard_errors())
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- long operations ----------------------------------------------------------------------


class OperationCancelled(AtdataLiteError):
    """A long operation stopped because its ``cancel=`` token was set (or Ctrl-C was pressed).

    What it had half-written is undone before this is raised, as after a crash: no
    temporary file and no index row is left. ``kept`` lists what stays (complete shard
    copies in the cache after a ``pull``, for example); empty means nothing changed.

    Attributes:
        operation: The operation that stopped (``"writing samples"``).
        kept: Descriptions of what the operation kept.
    """

    def __init__(self, operation: str, *, kept: tuple[str, ...] | list[str] = ()) -> None:
        self.operation = operation
        self.kept = tuple(kept)
        what = "; ".join(self.kept) if self.kept else "nothing was kept"
        super().__init__(f"{operation} was cancelled: {what}.")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_cancelled, (self.operation, self.kept))


def _rebuild_cancelled(operation: str, kept: tuple[str, ...]) -> OperationCancelled:
    return OperationCancelled(operation, kept=kept)
