"""The pyarrow peer of the benchmark harness (integration/peer/pyarrow_peer.py) speaks the
subset of the Strom contract the benchmarks use: these tests drive it with the same plain
pyarrow calls the Strom tests use."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from flight_helpers import (action, action1, append_cmd, check_ack, count, path, put,
                            raises_grpc, scan, start_peer)

COLUMNS = [
    {"name": "id", "type": "BIGINT", "nullable": False},
    {"name": "qty", "type": "INT"},
    {"name": "price", "type": "DOUBLE"},
    {"name": "name", "type": "STRING"},
    {"name": "flag", "type": "BOOLEAN"},
    {"name": "ts", "type": "TIMESTAMP(3)"},
]


def _batch(start: int, n: int) -> pa.RecordBatch:
    ids = list(range(start, start + n))
    return pa.record_batch({
        "id": pa.array(ids, pa.int64()),
        "qty": pa.array([i % 1000 for i in ids], pa.int32()),
        "price": pa.array([i / 4 for i in ids], pa.float64()),
        "name": pa.array([f"n{i}" for i in ids], pa.string()),
        "flag": pa.array([i % 2 == 0 for i in ids], pa.bool_()),
        "ts": pa.array([1_700_000_000_000 + i for i in ids], pa.timestamp("ms")),
    })


def test_given_peer_when_health_should_answer_ok(peer_client):
    assert action1(peer_client, "health")["status"] == "ok"


@pytest.fixture(params=["peer", "strom"])
def bench_client(request):
    """The benchmark harness drives both servers with the same code: so does this test."""
    return request.getfixturevalue("peer_client" if request.param == "peer" else "client")


def test_given_peer_table_when_appending_and_scanning_projected_should_round_trip(bench_client):
    peer_client = bench_client
    action1(peer_client, "create_database", {"name": "bench", "if_not_exists": True})
    info = action1(peer_client, "create_table", {"database": "bench", "table": "t", "columns": COLUMNS,
                                                 "bucket_num": 1})
    assert [c["name"] for c in info["columns"]] == [c["name"] for c in COLUMNS]

    batches = [_batch(0, 1000), _batch(1000, 500)]
    acks = put(peer_client, path("bench", "t"), batches)
    for ack, batch in zip(acks, batches):
        check_ack(ack, batch.num_rows)
    assert [a["buckets"][0]["base_offset"] for a in acks] == [0, 1000]

    # The CMD descriptor form appends too.
    acks = put(peer_client, append_cmd("bench", "t"), [_batch(1500, 10)])
    assert acks[0]["buckets"] == [{"bucket": 0, "base_offset": 1500, "count": 10}]

    got = scan(peer_client, "bench", "t", columns=["name", "id"])
    assert got.column_names == ["name", "id"]
    expected = pa.Table.from_batches(batches + [_batch(1500, 10)]).select(["name", "id"])
    assert got.equals(expected.cast(got.schema))
    assert count(peer_client, "bench", "t") == 1510

    full = scan(peer_client, "bench", "t")
    assert full.schema.field("id").nullable is False
    assert full.num_rows == 1510 and full.num_columns == len(COLUMNS)

    info = peer_client.get_flight_info(path("bench", "t"))
    assert info.total_records == 1510 and len(info.endpoints) == 1
    assert peer_client.do_get(info.endpoints[0].ticket).read_all().num_rows == 1510
    assert "t" in action1(peer_client, "list_tables", {"database": "bench"})


@pytest.mark.parametrize("codec", ["ZSTD", "LZ4_FRAME"])
def test_given_compressed_table_when_scanned_should_round_trip_on_both_servers(bench_client, codec):
    # The peer serves a compressed table as compressed IPC (as the node does); what the client
    # decodes is the written data, full width and projected.
    table = f"z_{codec.lower()}"
    action1(bench_client, "create_database", {"name": "bench", "if_not_exists": True})
    action1(bench_client, "create_table", {"database": "bench", "table": table, "columns": COLUMNS, "bucket_num": 1,
                                           "options": {"table.log.arrow.compression.type": codec}})
    batches = [_batch(0, 3000), _batch(3000, 1000)]
    put(bench_client, path("bench", table), batches)
    expected = pa.Table.from_batches(batches)
    full = scan(bench_client, "bench", table)
    assert full.num_rows == 4000
    assert full.select(["id", "name", "price"]).equals(expected.select(["id", "name", "price"]).cast(full.select(["id", "name", "price"]).schema))
    got = scan(bench_client, "bench", table, columns=["ts", "qty"])
    assert got.equals(expected.select(["ts", "qty"]).cast(got.schema))


def test_given_peer_when_batch_does_not_match_should_reject_it(peer_client):
    action1(peer_client, "create_database", {"name": "bench_bad"})
    action1(peer_client, "create_table", {"database": "bench_bad", "table": "t", "columns": COLUMNS})
    bad = _batch(0, 3).drop_columns(["qty"])
    with raises_grpc("INVALID_ARGUMENT", "qty"):
        put(peer_client, path("bench_bad", "t"), [bad])
    nulls = pa.RecordBatch.from_arrays(
        [pa.array([1, None], pa.int64())] + _batch(0, 2).columns[1:], schema=_batch(0, 2).schema)
    with raises_grpc("INVALID_ARGUMENT", "id"):
        put(peer_client, path("bench_bad", "t"), [nulls])
    # int32 ids are safe-cast into the BIGINT column.
    widened = _batch(0, 2).set_column(0, "id", pa.array([1, 2], pa.int32()))
    assert put(peer_client, path("bench_bad", "t"), [widened])[0]["rows"] == 2
    with raises_grpc("NOT_FOUND", "nope"):
        scan(peer_client, "bench_bad", "nope")
    assert count(peer_client, "bench_bad", "t") == 2


def test_given_peer_process_when_sigterm_should_exit_cleanly(tmp_path):
    server = start_peer(tmp_path / "peer.log")
    client = flight.FlightClient(server.url)
    assert action(client, "health")[0]["status"] == "ok"
    client.close()
    assert server.stop() == 0, server.log_tail()
