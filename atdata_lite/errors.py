"""One exception hierarchy for atdata-lite.

Every error the library raises on purpose is an :class:`AtdataLiteError`. Each subclass
also subclasses the builtin exception that atdata 0.2 raised in the same situation
(``KeyError``, ``ValueError``, ``TypeError``, ``FileNotFoundError``, ...), so an
``except KeyError:`` written against atdata keeps working after the import swap.

Messages name the thing that was wrong and say what to do about it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "AtdataLiteError",
    "BackendUnavailableError",
    "CorruptShardError",
    "DatasetExistsError",
    "DatasetNotFoundError",
    "FieldTypeError",
    "IndexLockedError",
    "IndexOpenError",
    "IndexTooNewError",
    "InvalidMetadataError",
    "InvalidPrefixError",
    "InvalidSampleKeyError",
    "InvalidSchemaRefError",
    "MigrationError",
    "NotAnIndexError",
    "NotPackableError",
    "SampleDecodeError",
    "SampleMismatchError",
    "SchemaConflictError",
    "SchemaDecodeError",
    "SchemaNotFoundError",
    "ShardNotFoundError",
    "ShardSkippedWarning",
    "TruncatedShardError",
    "UnknownBackendError",
    "UnsafeURLError",
    "UnsupportedFieldTypeError",
]


class AtdataLiteError(Exception):
    """Base class of every error raised on purpose by atdata-lite."""


class _PlainKeyError(KeyError):
    """A ``KeyError`` whose ``str()`` is the message itself, not its ``repr``."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


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


class UnknownBackendError(AtdataLiteError, ValueError):
    """No index backend is registered for a URL's scheme."""


class BackendUnavailableError(AtdataLiteError, ImportError):
    """A backend's optional dependency is not installed; the message gives the pip command."""


# --- appended by the data path --------------------------------------------------------


class InvalidSampleKeyError(AtdataLiteError, ValueError):
    """A caller-supplied sample key cannot name a tar member (``.``, ``/``, empty, ...)."""


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
