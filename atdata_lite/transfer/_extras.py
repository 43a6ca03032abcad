"""Import labels and stored lenses, after the datasets they point at.

Labels and lenses come from atdata 0.7 SQLite files and from atdata-lite backup files. They
are written after the catalog (datasets and schemas) in steps of their own: a label needs
its dataset stored first (labels never dangle). Each is reported in the plan:

* a label already set to the same dataset, or a lens already stored with the same content,
  is unchanged (so a second import changes nothing);
* a label whose dataset is neither in the target nor imported, that would re-point a
  dataset version, or whose version cannot be used, is skipped with the reason; so is a lens
  whose record is not a JSON object or whose ``name@version`` holds other content.

A label's description is kept; its timestamps are those of the import.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from ..errors import AtdataLiteError
from ..index._versions import check_label_version
from ..index.backend import IndexBackend
from ._plan import Plan, ReportItem
from ._raw import RawCatalog

__all__ = ["import_labels_and_lenses"]


def _fixed(text: str) -> Callable[[str], str]:
    """A render callback that gives ``text`` whatever the version."""
    return lambda _version: text


def import_labels_and_lenses(
    catalog: RawCatalog, target: IndexBackend, plan: Plan, *, dry_run: bool
) -> None:
    """Store ``catalog``'s labels and lenses in ``target``, reporting each in ``plan``."""
    _import_labels(catalog, target, plan, dry_run=dry_run)
    _import_lenses(catalog, target, plan, dry_run=dry_run)


def _import_labels(catalog: RawCatalog, target: IndexBackend, plan: Plan, *, dry_run: bool) -> None:
    # On a dry run the planned datasets are not written: count them as stored.
    planned = {d.cid: d for d in plan.datasets} if dry_run else {}
    for key, name, version, cid, description in catalog.labels:
        label = f"{name}@{version}" if version else name
        try:
            version = check_label_version(version)
        except AtdataLiteError as exc:
            plan.skipped.append(ReportItem("label", key, label, str(exc)))
            continue
        if target.get_dataset_by_cid(cid) is None and cid not in planned:
            plan.skipped.append(
                ReportItem("label", key, label, f"points at CID {cid}, which is not imported")
            )
            continue
        clash = target.get_dataset_version(name, version) if version else None
        if clash is None and version:
            clash = next(
                (d for d in planned.values() if (d.name, d.version) == (name, version)), None
            )
        if clash is not None and clash.cid != cid:
            plan.skipped.append(
                ReportItem("label", key, label, f"{label} is a dataset version of other content")
            )
            continue
        stored = target.get_label(name, version)
        if stored is not None and stored.cid == cid and stored.description == description:
            plan.unchanged.append(ReportItem("label", key, label, ""))
            continue
        if not dry_run:
            target.set_label(name, version, cid, description)
        why = f"moved from CID {stored.cid}" if stored is not None and stored.cid != cid else ""
        plan.imported.append(ReportItem("label", key, label, why))


def _import_lenses(catalog: RawCatalog, target: IndexBackend, plan: Plan, *, dry_run: bool) -> None:
    from ..lens_store import lens_content_hash

    for key, name, version, text in catalog.lenses:
        ref = f"{name}@{version}"
        try:
            record = json.loads(text)
            if not isinstance(record, dict):
                raise ValueError("the record is not a JSON object")
            digest = lens_content_hash(record)
        except (ValueError, TypeError) as exc:
            plan.skipped.append(ReportItem("lens", key, ref, f"unreadable record: {exc}"))
            continue
        stored = target.get_lens(name, version)
        if stored is not None:
            if stored.content_hash == digest:
                plan.unchanged.append(ReportItem("lens", key, ref, ""))
            else:
                plan.skipped.append(
                    ReportItem(
                        "lens",
                        key,
                        ref,
                        f"the target already has lens {ref} with other content; kept the target's",
                    )
                )
            continue
        if not dry_run:
            try:
                target.store_lens(
                    name,
                    version,
                    _fixed(text),  # stored exactly as exported
                    digest,
                    str(record.get("source_schema", "")),
                    str(record.get("view_schema", "")),
                )
            except (ValueError, AtdataLiteError) as exc:
                plan.skipped.append(ReportItem("lens", key, ref, str(exc)))
                continue
        plan.imported.append(ReportItem("lens", key, ref, ""))
