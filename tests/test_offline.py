"""Taking a dataset offline: ``atdata-lite pull``, ``atdata-lite cache``, and the offline
switch, proven with a guard that fails on any outgoing connection attempt."""

from __future__ import annotations

import json
import socket

import pytest
from _data_helpers import Row, rows
from _remote_helpers import ShardServer
from click.testing import CliRunner

from atdata_lite.cache import ShardCache
from atdata_lite.cli import main
from atdata_lite.dataset import Dataset
from atdata_lite.errors import ShardNotCachedError
from atdata_lite.index.api import Index
from atdata_lite.index.backend import ShardRecord
from atdata_lite.shards import write_samples


@pytest.fixture
def setup(tmp_path):
    """An index with dataset ``remote`` (4 shards served over HTTP) and ``local``."""
    root = tmp_path / "remote"
    root.mkdir()
    records = write_samples(rows(20), str(root / "s-%03d.tar"), maxcount=5)
    server = ShardServer(root).start()
    remote = [
        ShardRecord(f"{server.url}/s-{i:03d}.tar", r.size, r.sample_count, r.sha256)
        for i, r in enumerate(records)
    ]
    local = write_samples(rows(3), str(tmp_path / "local-%03d.tar"))
    index_path = tmp_path / "index.db"
    with Index(str(index_path)) as index:
        ref = index.publish_schema(Row)
        index.add_shards(remote, name="remote", schema_ref=ref)
        index.add_shards(local, name="local", schema_ref=ref)
    yield server, remote, str(index_path)
    server.stop()


def _cli(index_path: str, *args: str):
    return CliRunner().invoke(main, ["--index", index_path, *args], catch_exceptions=True)


@pytest.fixture
def no_network(monkeypatch):
    """Fail on ANY outgoing connection attempt, loopback included."""
    attempts: list = []

    def refuse(self, address, *args):
        attempts.append(address)
        raise OSError(f"network guard: connection to {address} attempted while offline")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda address, *a, **k: refuse(None, address))
    return attempts


def _entry(index_path: str, name: str = "remote"):
    with Index(index_path) as index:
        return index.get_dataset(name)


def test_pull_fetches_verified_and_a_rerun_downloads_nothing(setup):
    server, remote, index_path = setup
    result = _cli(index_path, "pull", "remote", "local")
    assert result.exit_code == 0, result.output
    assert "remote: fetched 4 shards" in result.stdout
    assert "local: no remote shards" in result.stdout
    sent = dict(server.sent)
    assert sent == {r.url.rsplit("/", 1)[1]: r.size for r in remote}
    again = json.loads(_cli(index_path, "pull", "remote", "--json").stdout)
    assert again[0]["fetched"] == 0 and again[0]["already_cached"] == 4
    assert dict(server.sent) == sent  # nothing twice


def test_pull_after_the_server_went_away_resumes(setup):
    server, remote, index_path = setup
    server.cut_after["s-002.tar"] = 100
    result = _cli(index_path, "pull", "remote")
    assert result.exit_code == 1 and "Error:" in result.stderr
    cache = ShardCache()
    assert len(cache.keys()) == 2  # the shards before the cut are kept
    del server.cut_after["s-002.tar"]
    result = _cli(index_path, "pull", "remote", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["fetched"] == 2
    for r in remote:
        name = r.url.rsplit("/", 1)[1]
        assert server.sent[name] <= r.size + (100 if name == "s-002.tar" else 0)


def test_cache_ls_du_prune_rm_clear(setup):
    _server, remote, index_path = setup
    rows_before = {
        r["name"]: r for r in json.loads(_cli(index_path, "cache", "ls", "--json").stdout)
    }
    assert rows_before["remote"]["offline"] is False and rows_before["local"]["offline"] is True
    _cli(index_path, "pull", "remote")
    listing = _cli(index_path, "cache", "ls")
    assert listing.exit_code == 0
    line = next(x for x in listing.stdout.splitlines() if x.startswith("remote"))
    assert line.split()[-1] == "yes"
    du = json.loads(_cli(index_path, "cache", "du", "--json").stdout)
    assert du["items"] == 4 and du["bytes"] == sum(r.size for r in remote)

    dry = _cli(index_path, "cache", "rm", "remote")
    assert "would delete 4 cached copies" in dry.stdout and len(ShardCache().keys()) == 4
    done = _cli(index_path, "cache", "rm", "remote", "--yes")
    assert "deleted 4" in done.stdout and ShardCache().keys() == []

    _cli(index_path, "pull", "remote")
    pruned = json.loads(_cli(index_path, "cache", "prune", "--to", "1", "--json").stdout)
    assert len(pruned["evicted"]) == 4 and pruned["bytes"] == 0
    assert _cli(index_path, "cache", "prune", "--to", "lots").exit_code == 2

    _cli(index_path, "pull", "remote")
    assert "would clear" in _cli(index_path, "cache", "clear").stdout
    assert len(ShardCache().keys()) == 4
    assert "cleared" in _cli(index_path, "cache", "clear", "--yes").stdout
    assert ShardCache().keys() == []


def test_offline_uncached_dataset_fails_listing_what_is_missing(setup, no_network):
    _server, _remote, index_path = setup
    entry = _entry(index_path)
    ds = Dataset[Row](entry, offline=True)
    with pytest.raises(ShardNotCachedError) as err:
        next(iter(ds.ordered()))
    message = str(err.value)
    assert "4 of 4 remote shards are not cached" in message
    assert "s-000.tar" in message and "atdata-lite pull remote" in message
    assert no_network == []  # failing did not try the network either


def test_offline_switch_env_and_api(setup, monkeypatch):
    server, _remote, index_path = setup
    assert _cli(index_path, "pull", "remote").exit_code == 0
    entry = _entry(index_path)
    before = dict(server.sent)

    attempts: list = []

    def refuse(self, address, *args):
        attempts.append(address)
        raise OSError(f"network guard: connection to {address} attempted while offline")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    assert [r.idx for r in Dataset[Row](entry, offline=True).ordered()] == list(range(20))
    monkeypatch.setenv("ATDATA_LITE_OFFLINE", "1")
    assert [r.idx for r in Dataset[Row](entry).chunk(1, 3).ordered()] == list(range(5, 10))
    assert sorted(r.idx for r in Dataset[Row](entry).shuffled(seed=1)) == list(range(20))
    # pull itself refuses to run offline
    result = _cli(index_path, "pull", "remote")
    assert result.exit_code == 1 and "Offline mode is on" in result.stderr
    assert attempts == [] and dict(server.sent) == before
    # The guard does catch the http filesystem: an online, uncached read is refused by it.
    monkeypatch.delenv("ATDATA_LITE_OFFLINE")
    with pytest.raises(Exception):  # noqa: B017 - aiohttp wraps the guard's OSError
        list(Dataset[Row](entry, cache=False).ordered())
    assert attempts != []


def test_offline_partly_cached_fails_before_the_first_sample(setup, no_network):
    _server, remote, index_path = setup
    entry = _entry(index_path)
    # One shard reaches the cache while online (the guard is lifted for this read only).
    socket_module_connect = socket.socket.connect
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", _REAL_CONNECT)
        mp.setattr(socket.socket, "connect_ex", _REAL_CONNECT_EX)
        ShardCache().fetch(remote[0].url, sha256=remote[0].sha256, size=remote[0].size)
    assert socket.socket.connect is socket_module_connect
    ds = Dataset[Row](entry, offline=True)
    seen = []
    with pytest.raises(ShardNotCachedError, match=r"3 of 4 remote shards.*pull remote"):
        for sample in ds.ordered():
            seen.append(sample)
    assert seen == [] and no_network == []
    # The cached chunk alone reads fine offline.
    assert [r.idx for r in ds.chunk(0, 4).ordered()] == [0, 1, 2, 3, 4]


_REAL_CONNECT = socket.socket.connect
_REAL_CONNECT_EX = socket.socket.connect_ex
