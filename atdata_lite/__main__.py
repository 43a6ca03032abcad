"""``python -m atdata_lite``: the same as the ``atdata-lite`` command."""

from __future__ import annotations

from atdata_lite.cli import main

if __name__ == "__main__":
    main(prog_name="atdata-lite")
