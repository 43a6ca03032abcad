"""Import atdata 0.7's labels and stored lenses, after the datasets they point at.

Labels and lenses are written after the catalog (datasets and schemas) in steps of their own:
a label needs its dataset stored first (labels never dangle). A label whose dataset is not
in the target, or that would re-point a dataset version, is reported as skipped.
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
    for key, name, version, cid, description in catalog.labels:
        label = f"{name}@{version}" if version else name
        try:
            version = check_label_version(version)
        except AtdataLiteError as exc:
            plan.skipped.append(ReportItem("label", key, label, str(exc)))
            continue
        if target.get_dataset_by_cid(cid) is None and not dry_run:
            plan.skipped.append(
                ReportItem("label", key, label, f"points at CID {cid}, which is not imported")
            )
            continue
        clash = target.get_dataset_version(name, version) if version else None
        if clash is not None and clash.cid != cid:
            plan.skipped.append(
                ReportItem("label", key, label, f"{label} is a dataset version of other content")
            )
            continue
        if not dry_run:
            target.set_label(name, version, cid, description)
        plan.imported.append(ReportItem("label", key, label, ""))
    for key, name, version, text in catalog.lenses:
        try:
            record = json.loads(text)
            if not isinstance(record, dict):
                raise ValueError("the record is not a JSON object")
            from ..lens_store import lens_content_hash

            digest = lens_content_hash(record)
            if not dry_run:
                target.store_lens(
                    name,
                    version,
                    _fixed(text),
                    digest,
                    str(record.get("source_schema", "")),
                    str(record.get("view_schema", "")),
                )
        except (ValueError, AtdataLiteError) as exc:
            plan.skipped.append(ReportItem("lens", key, f"{name}@{version}", str(exc)))
            continue
        plan.imported.append(ReportItem("lens", key, f"{name}@{version}", ""))
