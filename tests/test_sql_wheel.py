"""The built wheel ships the migrations: install it (not editable) in a fresh virtualenv.

A plain ``venv`` (no ``--system-site-packages``) so the editable install cannot leak in; the
wheel's dependencies come from the package index. The installed copy then upgrades the
committed revision-1 index, which needs the Alembic scripts (creating a new index does not).
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from _sql_helpers import REV1, copy_rev1

REPO = Path(__file__).resolve().parents[1]

CHECK = """
import sys
from pathlib import Path
import atdata_lite
from atdata_lite.index.sql import HEAD_REVISION, current_revision, open_sql_backend
from atdata_lite.index.sql.migrate import migrations_dir

assert "site-packages" in atdata_lite.__file__, atdata_lite.__file__
assert migrations_dir() == Path(atdata_lite.__file__).parent / "migrations", migrations_dir()
old = sys.argv[1]
assert current_revision(old) == sys.argv[2]
backend = open_sql_backend(old)
assert backend.get_dataset("mnist-train").data_urls[0] == "s3://b/mnist/data-000000.tar"
backend.close()
assert current_revision(old) == HEAD_REVISION
new = open_sql_backend(sys.argv[3])
new.close()
print("OK", HEAD_REVISION)
"""


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_wheel_installed_in_fresh_venv_opens_and_upgrades_an_index(tmp_path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(REPO)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("atdata_lite-*.whl")

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False, clear=True).create(env_dir)
    bindir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / ("python.exe" if os.name == "nt" else "python")
    clean_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)],
        check=True,
        env=clean_env,
        capture_output=True,
    )
    old = copy_rev1(tmp_path)
    out = subprocess.run(
        [str(python), "-c", CHECK, str(old), REV1, str(tmp_path / "new" / "index.db")],
        cwd=tmp_path,  # not the repository: nothing importable from the source tree
        env=clean_env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("OK")
    assert list(tmp_path.glob(f"index.db.backup-{REV1}-*"))
