"""Tests that need a node of their own: graceful shutdown and restart, the message size limit
of `--max-message-bytes`, the KV block cache size from the configuration, and the tail
cache as `health` reports it."""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa
import pytest
import pyarrow.flight as flight

from flight_helpers import action1, count, path, put, raises_grpc, scan, start_strom, ticket

COLUMNS = [{"name": "id", "type": "BIGINT", "nullable": False}, {"name": "payload", "type": "STRING"}]
SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), ("payload", pa.string())])


def batch(start: int, n: int, width: int = 16) -> pa.RecordBatch:
    ids = list(range(start, start + n))
    return pa.record_batch([pa.array(ids, pa.int64()), pa.array([f"{i:0{width}d}" for i in ids])], schema=SCHEMA)


def test_given_data_when_sigterm_and_restart_should_exit_zero_and_keep_every_acked_row(tmp_path):
    data_dir = tmp_path / "data"
    node = start_strom(data_dir, tmp_path / "first.log")
    client = flight.FlightClient(node.url)
    try:
        action1(client, "create_database", {"name": "life"})
        action1(client, "create_table", {"database": "life", "table": "t", "columns": COLUMNS, "bucket_num": 2})
        acks = put(client, path("life", "t"), [batch(0, 500), batch(500, 700)])
        assert sum(a["rows"] for a in acks) == 1_200
    finally:
        client.close()
        code = node.stop()
    assert code == 0, f"strom should exit 0 on SIGTERM, got {code}\n{node.log_tail()}"

    node = start_strom(data_dir, tmp_path / "second.log")
    client = flight.FlightClient(node.url)
    try:
        assert "t" in action1(client, "list_tables", {"database": "life"})
        assert count(client, "life", "t") == 1_200
        got = scan(client, "life", "t")
        assert sorted(got.column("id").to_pylist()) == list(range(1_200))
        # Appends continue after the recovered offsets.
        more = put(client, path("life", "t"), [batch(1_200, 10)])
        latest_before = {b: 0 for b in range(2)}
        for a in acks:
            for b in a["buckets"]:
                latest_before[b["bucket"]] += b["count"]
        for b in more[0]["buckets"]:
            assert b["base_offset"] >= latest_before[b["bucket"]], (more, latest_before)
        assert count(client, "life", "t") == 1_210
    finally:
        client.close()
        assert node.stop() == 0


def test_given_max_message_bytes_when_a_batch_is_larger_should_be_resource_exhausted(tmp_path):
    limit = 1 << 20
    node = start_strom(tmp_path / "data", tmp_path / "strom.log", "--max-message-bytes", str(limit))
    client = flight.FlightClient(node.url)
    try:
        action1(client, "create_database", {"name": "lim"})
        action1(client, "create_table", {"database": "lim", "table": "t", "columns": COLUMNS})
        small = batch(0, 1_000)
        assert put(client, path("lim", "t"), [small])[0]["rows"] == 1_000
        big = batch(1_000, 20_000, width=100)   # ~2.2 MB in one FlightData message
        assert big.nbytes > 2 * limit
        with raises_grpc("RESOURCE_EXHAUSTED"):
            put(client, path("lim", "t"), [big])
        assert count(client, "lim", "t") == 1_000
        # The node keeps serving after refusing the oversized message.
        assert put(client, path("lim", "t"), [batch(50_000, 10)])[0]["rows"] == 10
        assert count(client, "lim", "t") == 1_010
    finally:
        client.close()
        node.stop()


def test_given_an_open_follow_scan_when_sigterm_should_still_stop_and_end_the_stream(tmp_path):
    node = start_strom(tmp_path / "data", tmp_path / "strom.log")
    client = flight.FlightClient(node.url)
    action1(client, "create_database", {"name": "f"})
    action1(client, "create_table", {"database": "f", "table": "t", "columns": COLUMNS})
    reader = client.do_get(ticket(scan="log", database="f", table="t", follow=True))
    ended = threading.Event()
    outcome = {}

    def drain():
        try:
            for _ in reader:
                pass
            outcome["end"] = "eof"
        except BaseException as e:  # noqa: BLE001 - the stream may end with an error
            outcome["end"] = e
        ended.set()

    threading.Thread(target=drain, daemon=True).start()
    try:
        code = node.stop(timeout=20)   # the node's shutdown grace is 5 s by default
    finally:
        if not ended.wait(10):
            reader.cancel()
        client.close()
    assert code == 0, node.log_tail()
    assert ended.is_set(), "the follow stream should end when the node stops"


def _memory_limit_bytes() -> int:
    """What the node should see: the cgroup v2 limit when one is set, else MemTotal."""
    total = None
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            total = int(line.split()[1]) * 1024
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        limit = "max"
    return min(total, int(limit)) if limit.isdigit() else total


def test_given_default_config_when_health_should_report_an_eighth_of_memory_within_64mib_and_2gib_as_block_cache(tmp_path):
    node = start_strom(tmp_path / "data", tmp_path / "strom.log")
    client = flight.FlightClient(node.url)
    try:
        expected = min(max(_memory_limit_bytes() // 8, 64 * 1024 * 1024), 2 * 1024 * 1024 * 1024)
        assert action1(client, "health")["kv_block_cache_bytes"] == expected
    finally:
        client.close()
        node.stop()


def test_given_block_cache_bytes_in_config_when_health_should_report_it_and_bad_values_fail_startup(tmp_path):
    config = tmp_path / "strom.toml"
    config.write_text("[kv]\nblock_cache_bytes = 33554432\n")
    node = start_strom(tmp_path / "data", tmp_path / "strom.log", "--config", str(config))
    client = flight.FlightClient(node.url)
    try:
        assert action1(client, "health")["kv_block_cache_bytes"] == 33554432
    finally:
        client.close()
        node.stop()
    config.write_text('[kv]\nblock_cache_bytes = "plenty"\n')
    with pytest.raises(RuntimeError, match="plenty"):
        start_strom(tmp_path / "data2", tmp_path / "strom2.log", "--config", str(config))


def _scan_through_the_tail_cache(tmp_path, name: str, *extra: str) -> tuple[pa.Table, dict]:
    """Writes 3 batches, scans them full width and pruned, and returns the scans and health."""
    node = start_strom(tmp_path / name, tmp_path / f"{name}.log", *extra)
    client = flight.FlightClient(node.url)
    try:
        action1(client, "create_database", {"name": "tc"})
        action1(client, "create_table", {"database": "tc", "table": "t", "columns": COLUMNS})
        put(client, path("tc", "t"), [batch(0, 300), batch(300, 300), batch(600, 400)])
        full = scan(client, "tc", "t")
        pruned = scan(client, "tc", "t", columns=["payload"])
        assert pruned.column("payload").equals(full.column("payload"))
        return full, action1(client, "health")["tail_cache"]
    finally:
        client.close()
        node.stop()


def test_given_recent_appends_when_scanned_should_serve_them_from_the_tail_cache_unless_turned_off(tmp_path):
    full, cached = _scan_through_the_tail_cache(tmp_path, "on")
    assert full.column("id").to_pylist() == list(range(1_000))
    assert cached["budget_bytes"] == 1024 ** 3, "the default budget is 1 GiB"
    # Three ZSTD-compressed batches (the default codec) held; both scans read all three from it.
    assert cached["held_bytes"] > 0 and cached["hits"] == 6 and cached["misses"] == 0, cached
    config = tmp_path / "off.toml"
    config.write_text("[log]\ntail_cache_bytes = 0\n")
    same, off = _scan_through_the_tail_cache(tmp_path, "off", "--config", str(config))
    assert same.equals(full)
    assert off == {"budget_bytes": 0, "held_bytes": 0, "hits": 0, "misses": 6}, off
