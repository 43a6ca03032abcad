"""The process the crash-matrix test kills: one job, repeated until it is killed.

Usage: python _crash_child.py MODE INDEX STORE [SOURCE] [--once]. Prints "ready" once its
imports are done, so the parent's random delay lands inside the work.
"""

from __future__ import annotations

import sys
import uuid

sys.path.insert(0, __import__("os").path.dirname(__file__))


def main() -> None:
    mode, index, store = sys.argv[1:4]
    once = "--once" in sys.argv
    if mode == "write":
        from _data_helpers import rows

        from atdata_lite.index.backend import DatasetRecord
        from atdata_lite.index.sql import open_sql_backend
        from atdata_lite.shards import write_samples

        backend = open_sql_backend(index)
        print("ready", flush=True)
        while True:
            name = f"w-{uuid.uuid4().hex[:12]}"
            shards = write_samples(rows(120), f"{store}/{name}/data-%06d.tar", maxcount=40)
            backend.insert_datasets(
                [
                    DatasetRecord(
                        cid=f"bafy-{name}",
                        name=name,
                        schema_ref="atdata://local/sampleSchema/Row@1.0.0",
                        shards=tuple(shards),
                    )
                ]
            )
            if once:
                break
        backend.close()
    elif mode == "migrate":
        import alembic.command  # noqa: F401  (imported before "ready": the kill lands in the work)

        from atdata_lite.index.sql import open_sql_backend

        print("ready", flush=True)
        open_sql_backend(index).close()
    elif mode == "import":
        from atdata_lite.transfer import import_catalog

        print("ready", flush=True)
        import_catalog(sys.argv[4], index)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
