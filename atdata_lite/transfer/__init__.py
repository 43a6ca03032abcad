"""Moving catalogs in and out: import from atdata, export to atdata or a backup file.

* :func:`import_catalog` copies the schemas and datasets of an atdata 0.2 Redis index
  (``redis://``), an atdata 0.7 SQLite index file, or an atdata-lite backup file into an
  index, keeping CIDs, names, refs, shard URLs and metadata bytes. The source is only read.
  The write is one :meth:`~atdata_lite.index.backend.IndexBackend.write_catalog` call, so it
  is all-or-nothing, and a second run changes nothing.
* :func:`export_catalog` writes an index's whole catalog -- every version of every dataset,
  the schemas, the labels and the stored lenses -- to a Redis database in atdata's layout
  (so atdata 0.2 can use it again) or to a backup file (:mod:`._backup`), which
  :func:`import_catalog` reads back.

Example::

    from atdata_lite.transfer import import_catalog, export_catalog

    report = import_catalog("redis://localhost:6379/0", "~/index.db", dry_run=True)
    print(report.summary())
    export_catalog("~/index.db", "catalog-backup.json")
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..index._registry import open_backend, url_scheme
from ..index.backend import DatasetRecord, IndexBackend, LabelRow, LensRow
from ..progress import CancelToken, ProgressArg, ProgressEvent
from ..progress import Progress as _Counter
from ._backup import BACKUP_FORMAT, BACKUP_VERSION, write_backup
from ._plan import ReportItem, plan_import
from ._sources import read_source

__all__ = [
    "BACKUP_FORMAT",
    "BACKUP_VERSION",
    "ExportReport",
    "ImportReport",
    "ReportItem",
    "export_catalog",
    "import_catalog",
]

Progress = Callable[[int, int], None]
"""The older form of a progress callback, ``progress(done, total)``: still accepted."""


def _progress_arg(progress: Any) -> Any:
    """A ``progress(done, total)`` callable (the older form) becomes an event callback."""
    if not callable(progress):
        return progress
    import inspect

    try:
        inspect.signature(progress).bind(0, 0)
    except (TypeError, ValueError):
        return progress  # takes one argument: the event
    try:
        inspect.signature(progress).bind(0)
        return progress
    except TypeError:
        pass
    legacy = progress
    last: list[tuple[int, int]] = []

    def on_event(event: ProgressEvent) -> None:
        call = (event.done, event.total if event.total is not None else event.done)
        if (event.done or event.finished) and call not in last[-1:]:
            last[:] = [call]
            legacy(*call)

    return on_event


@dataclass
class ImportReport:
    """What :func:`import_catalog` did, or would do on a dry run.

    Every schema and dataset row of the source appears in exactly one list, with its source
    key and, where something was not plain, the reason.
    """

    source: str
    target: str
    dry_run: bool
    imported: list[ReportItem] = field(default_factory=list)
    renamed: list[ReportItem] = field(default_factory=list)
    skipped: list[ReportItem] = field(default_factory=list)
    unchanged: list[ReportItem] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """True when the import wrote (or, on a dry run, would write) anything."""
        return bool(self.imported or self.renamed)

    def counts(self) -> dict[str, int]:
        """Number of rows per outcome."""
        return {
            "imported": len(self.imported),
            "renamed": len(self.renamed),
            "skipped": len(self.skipped),
            "unchanged": len(self.unchanged),
        }

    def summary(self) -> str:
        """One line for people, e.g. ``imported 5, renamed 1, skipped 2, unchanged 0``."""
        c = self.counts()
        head = "dry run: would import" if self.dry_run else "imported"
        return (
            f"{head} {c['imported']}, renamed {c['renamed']}, skipped {c['skipped']}, "
            f"unchanged {c['unchanged']} ({self.source} -> {self.target})"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for ``--json``), with ``summary`` counts."""
        return {**asdict(self), "summary": self.counts()}


@dataclass
class ExportReport:
    """What :func:`export_catalog` wrote."""

    to: str
    kind: str  # "redis" or "file"
    schemas: int
    datasets: int
    schemas_unchanged: int = 0
    datasets_unchanged: int = 0
    labels: int = 0
    lenses: int = 0

    def summary(self) -> str:
        """One line for people."""
        extras = "".join(
            f", {n} {what}" for n, what in ((self.labels, "labels"), (self.lenses, "lenses")) if n
        )
        return (
            f"exported {self.schemas} schemas and {self.datasets} datasets{extras} to {self.to}"
            + (
                f" ({self.schemas_unchanged} schemas and {self.datasets_unchanged} datasets "
                "were already there)"
                if self.kind == "redis"
                else ""
            )
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def _resolve(target: Any) -> tuple[IndexBackend, bool]:
    """``(backend, opened_here)`` for an Index, a backend or a location."""
    if isinstance(target, IndexBackend):
        return target, False
    backend = getattr(target, "backend", None)
    if isinstance(backend, IndexBackend):
        return backend, False
    if isinstance(target, str | os.PathLike):
        return open_backend(os.path.expanduser(os.fspath(target))), True
    raise TypeError(
        f"Expected an Index, an index backend or an index location, got {type(target).__name__}"
    )


def _missing_sqlite_file(target: Any) -> bool:
    """True when ``target`` is the location of a SQLite file that does not exist yet."""
    if not isinstance(target, str | os.PathLike):
        return False
    location = os.path.expanduser(os.fspath(target))
    scheme = url_scheme(location)
    if scheme is None:
        return not os.path.exists(location)
    if scheme == "sqlite":
        from sqlalchemy.engine import make_url

        database = make_url(location).database or ""
        return bool(database) and database != ":memory:" and not os.path.exists(database)
    return False


def _write_labels_and_lenses(
    target: IndexBackend,
    datasets: list[DatasetRecord],
    labels: list[LabelRow],
    lenses: list[LensRow],
    *,
    dry_run: bool,
) -> list[str]:
    """Write labels and lenses after their datasets; the kinds of the rows written.

    With ``dry_run`` nothing is written: ``datasets`` count as stored, so every clash is
    found before :meth:`~atdata_lite.index.backend.IndexBackend.write_catalog` runs.

    Raises:
        SchemaConflictError: The target holds a label's name and version as a dataset
            version of other content, or a lens version with other content.
    """
    from ..errors import SchemaConflictError
    from ._extras import import_labels_and_lenses
    from ._plan import Plan
    from ._raw import RawCatalog

    catalog = RawCatalog(kind="export")
    catalog.labels = [(f"label {r.name}", r.name, r.version, r.cid, r.description) for r in labels]
    catalog.lenses = [(f"lens {r.name}", r.name, r.version, r.record_json) for r in lenses]
    plan = Plan(datasets=list(datasets))
    import_labels_and_lenses(catalog, target, plan, dry_run=dry_run)
    if plan.skipped:
        item = plan.skipped[0]
        raise SchemaConflictError(
            f"Cannot export the {item.kind} {item.name} to {target.location}: {item.reason}; "
            "nothing was written."
        )
    return [item.kind for item in plan.imported]


def _source_label(source: str | os.PathLike[str]) -> str:
    from ..index.redis.backend import _hide_password

    return _hide_password(os.fspath(source))


def import_catalog(
    source: str | os.PathLike[str],
    target: Any,
    *,
    dry_run: bool = False,
    progress: ProgressArg | Progress = None,
    cancel: CancelToken | None = None,
) -> ImportReport:
    """Copy the catalog at ``source`` into ``target``.

    Args:
        source: A ``redis://``/``rediss://`` URL of an atdata 0.2 index, the path of an atdata
            0.7 SQLite index file, or a backup file written by :func:`export_catalog`.
            Never modified.
        target: An :class:`~atdata_lite.index.api.Index`, an index backend, or an index
            location (path or URL) opened for the import and closed after.
        dry_run: Decide and report everything, write nothing.
        progress: ``None``/``True`` a bar on a terminal, ``False`` nothing, or a callable
            receiving :class:`~atdata_lite.progress.ProgressEvent` objects (unit ``"row"``);
            the older ``progress(done, total)`` form is accepted too.
        cancel: Checked for every source row and once more just before the one write:
            once set, nothing is written and
            :class:`~atdata_lite.errors.OperationCancelled` is raised.

    Returns:
        The report: every source row as imported, renamed, skipped or unchanged.

    Raises:
        NotAnIndexError: ``source`` is missing or of no known kind.
        IndexTooNewError: The backup file is from a newer atdata-lite.
        SchemaConflictError, DatasetExistsError: The target changed during the import in a
            way that clashes; nothing was written.
        OperationCancelled: ``cancel`` was set; nothing was written.
    """
    source = os.fspath(source)
    if not source.startswith(("redis://", "rediss://", "unix://")):
        source = os.path.expanduser(source)
    catalog = read_source(source)
    if dry_run and _missing_sqlite_file(target):
        # A dry run writes nothing, not even a new empty index: plan against an empty one.
        backend, opened, label = open_backend("sqlite://"), True, os.fspath(target)
    else:
        backend, opened = _resolve(target)
        label = backend.location
    total = len(catalog.schemas) + len(catalog.datasets)
    try:
        with _Counter(
            "importing", total, _progress_arg(progress), unit="row", cancel=cancel
        ) as counter:
            plan = plan_import(catalog, backend, counter)
            counter.check()  # the last moment a cancel leaves the target untouched
            backend.write_catalog(plan.schemas, plan.datasets, dry_run=dry_run)
            if catalog.labels or catalog.lenses:
                from ._extras import import_labels_and_lenses

                import_labels_and_lenses(catalog, backend, plan, dry_run=dry_run)
        return ImportReport(
            source=_source_label(source),
            target=label,
            dry_run=dry_run,
            imported=plan.imported,
            renamed=plan.renamed,
            skipped=plan.skipped,
            unchanged=plan.unchanged,
        )
    finally:
        if opened:
            backend.close()


def export_catalog(
    index: Any,
    to: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    progress: ProgressArg | Progress = None,
    cancel: CancelToken | None = None,
) -> ExportReport:
    """Write the whole catalog of ``index`` to a Redis database or a backup file.

    Args:
        index: An :class:`~atdata_lite.index.api.Index`, an index backend, or a location.
        to: A ``redis://``/``rediss://`` URL: entries and schemas are written in atdata
            0.2's layout, labels and lenses in atdata 0.7's, next to whatever is there; a
            clash with a stored entry, schema, label or lens raises and writes nothing.
            Anything else is a file path: a versioned JSON backup holding every dataset
            version, label and stored lens (see :mod:`atdata_lite.transfer._backup`),
            written atomically.
        overwrite: Replace an existing backup file (files only).
        progress: As in :func:`import_catalog` (the rows are counted once written).
        cancel: Checked before the write: once set, nothing is written and
            :class:`~atdata_lite.errors.OperationCancelled` is raised. The write itself
            (one Redis transaction, or one atomic file) is not interrupted.

    Returns:
        What was written.

    Raises:
        FileExistsError: The backup file exists and ``overwrite`` is false.
        SchemaConflictError, DatasetExistsError: The Redis database holds other content
            under the same names; nothing was written.
        OperationCancelled: ``cancel`` was set; nothing was written.
    """
    backend, opened = _resolve(index)
    counter = _Counter("exporting", None, _progress_arg(progress), unit="row", cancel=cancel)
    try:
        counter.__enter__()
        schemas = list(backend.iter_schemas())
        datasets = list(backend.iter_datasets())
        labels = list(backend.iter_labels())
        lenses = list(backend.iter_lenses())
        total = len(schemas) + len(datasets)
        counter.set_total(total)
        counter.check()
        dest = os.fspath(to)
        if dest.startswith(("redis://", "rediss://", "unix://")):
            from ..index.redis import open_redis_backend

            redis_backend = open_redis_backend(dest)
            try:
                # Labels and lenses are checked first, so a clash writes nothing at all.
                _write_labels_and_lenses(redis_backend, datasets, labels, lenses, dry_run=True)
                result = redis_backend.write_catalog(schemas, datasets)
                written = _write_labels_and_lenses(
                    redis_backend, datasets, labels, lenses, dry_run=False
                )
            finally:
                redis_backend.close()
            report = ExportReport(
                to=_source_label(dest),
                kind="redis",
                schemas=len(result.schemas_added),
                datasets=len(result.datasets_added),
                schemas_unchanged=len(result.schemas_unchanged),
                datasets_unchanged=len(result.datasets_unchanged),
                labels=written.count("label"),
                lenses=written.count("lens"),
            )
        else:
            path = write_backup(
                os.path.expanduser(dest),
                schemas,
                datasets,
                source=backend.location,
                overwrite=overwrite,
                labels=labels,
                lenses=lenses,
            )
            report = ExportReport(
                to=str(path),
                kind="file",
                schemas=len(schemas),
                datasets=len(datasets),
                labels=len(labels),
                lenses=len(lenses),
            )
        counter.update(total)
        counter.__exit__(None, None, None)
        return report
    except BaseException as exc:
        counter.__exit__(type(exc), exc, exc.__traceback__)
        raise
    finally:
        if opened:
            backend.close()
