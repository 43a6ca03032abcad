"""``atdata_lite.compat.install()``: unmodified ``import atdata`` code runs on atdata-lite."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent / "data" / "atdata_examples.py"


def _run(code: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=240,
    )


def _examples_code(mode: str) -> str:
    return textwrap.dedent(
        f"""
        import sys
        import atdata_lite.compat
        assert atdata_lite.compat.install()
        sys.argv = ["atdata_examples.py", {mode!r}]
        exec(compile(open({str(EXAMPLES)!r}).read(), "atdata_examples.py", "exec"))
        """
    )


def test_atdata_examples_run_unmodified_on_sqlite(tmp_path):
    result = _run(_examples_code("sqlite"), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    assert (tmp_path / "index.db").exists()


@pytest.mark.redis
def test_atdata_examples_run_unmodified_on_redis(tmp_path, redis_url):
    result = _run(_examples_code("redis"), tmp_path, {"REDIS_URL": redis_url})
    assert result.returncode == 0, result.stderr
    import redis

    keys = sorted(k.decode() for k in redis.Redis.from_url(redis_url).keys("LocalSchema:*"))
    assert keys == [
        "LocalSchema:ImageSample@1.0.0",
        "LocalSchema:ImageSample@1.0.1",
        "LocalSchema:TextSample@1.0.0",
    ]


def test_aliases_are_atdata_lite_objects_and_lens_stays_the_decorator(tmp_path):
    code = textwrap.dedent(
        """
        import importlib
        import atdata_lite, atdata_lite.compat
        assert atdata_lite.compat.install() and atdata_lite.compat.installed()
        import atdata
        import atdata.lens, atdata.dataset
        from atdata import local
        from atdata.local import Index, S3DataStore, Repo
        from atdata.index import Index as Index07
        from atdata.stores import LocalDiskStore
        from atdata._sources import S3Source, URLSource
        from atdata._protocols import Packable
        assert atdata.Dataset is atdata_lite.Dataset is atdata.dataset.Dataset
        assert Index is Index07 is atdata_lite.Index
        assert callable(atdata.lens) and not isinstance(atdata.lens, type(atdata))
        assert importlib.import_module("atdata.lens").Lens is atdata_lite.Lens
        for missing in ("atdata.atmosphere", "atdata.promote", "atdata.compat"):
            try:
                importlib.import_module(missing)
            except ModuleNotFoundError:
                pass
            else:
                raise AssertionError(missing)
        atdata_lite.compat.uninstall()
        import sys
        assert "atdata" not in sys.modules
        try:
            import atdata
        except ModuleNotFoundError:
            print("ok")
        """
    )
    result = _run(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_install_never_shadows_a_real_atdata(tmp_path):
    (tmp_path / "atdata").mkdir()
    (tmp_path / "atdata" / "__init__.py").write_text("REAL = True\n")
    code = textwrap.dedent(
        """
        import atdata_lite.compat
        assert atdata_lite.compat.install() is False
        assert not atdata_lite.compat.installed()
        import atdata
        assert atdata.REAL
        print("ok")
        """
    )
    result = _run(code, tmp_path, {"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
