"""Reading primary-key tables with plain pyarrow.flight: the changelog (log scan with
_change_type), snapshot scans (columns, filters, limit, buckets, per-bucket log_offset), counts,
point and prefix lookups as tickets and over DoExchange, JSON key spellings, and
insert-if-not-exists with an auto-increment column (also across a restart). Expected results
come from pk_model.PkModel fed with the same writes."""

from __future__ import annotations

import datetime as dt
import decimal
import operator
import random
import threading

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from flight_helpers import (action1, arrow_schema, changelog, count_of, create_pk_table, exchange, lookup, path, put,
                            record_batch, scan, snapshot, start_strom, write_cmd)
from pk_model import (DELETE, INSERT, UPDATE_AFTER, UPDATE_BEFORE, PkModel, assert_changelog_matches,
                      assert_rows_equal, assert_snapshot_matches, replay)

ORDER_COLUMNS = [
    {"name": "user_id", "type": "BIGINT"},
    {"name": "ds", "type": "STRING"},
    {"name": "order_id", "type": "BIGINT"},
    {"name": "amount", "type": "DOUBLE"},
    {"name": "status", "type": "STRING"},
    {"name": "note", "type": "STRING"},
]
ORDER_KEY = ["user_id", "ds", "order_id"]
BUCKETS = 3
DAYS = ["2025-01-01", "2025-01-02", "2025-01-03"]


@pytest.fixture(scope="module")
def orders(client, database):
    """PRIMARY KEY (user_id, ds, order_id), bucket key user_id (so also a prefix index), filled
    with inserts, updates and deletes; returns (database, table, model)."""
    table = "order_ri"
    info = create_pk_table(client, database, table, ORDER_COLUMNS, ORDER_KEY, bucket_key=["user_id"],
                           bucket_num=BUCKETS)
    assert info["bucket_key"] == ["user_id"] and info["primary_key"] == ORDER_KEY
    model = PkModel(ORDER_COLUMNS, ORDER_KEY)
    rng = random.Random(8)
    schema = arrow_schema(ORDER_COLUMNS)
    for round_ in range(5):
        rows = [{"user_id": rng.randrange(1, 16), "ds": rng.choice(DAYS), "order_id": rng.randrange(1, 12),
                 "amount": rng.randrange(0, 4000) / 8, "status": rng.choice(["new", "paid", "sent"]),
                 "note": rng.choice([None, "gift", "rush", ""])} for _ in range(60)]
        model.upsert(rows)
        put(client, path(database, table), [record_batch(schema, rows)])
        if round_ == 3:
            keys = [dict(zip(ORDER_KEY, k)) for k in rng.sample(sorted(model.state), 15)]
            model.delete(keys)
            put(client, write_cmd("delete", database, table), [record_batch(arrow_schema(ORDER_COLUMNS, ORDER_KEY), keys)])
    return database, table, model


def project(row: dict, columns: list[str]) -> dict:
    return {c: row[c] for c in columns}


# ---------------------------------------------------------------- changelog and counts

def test_given_pk_table_when_log_scanned_should_serve_the_changelog_of_the_model(client, orders):
    database, table, model = orders
    full = changelog(client, database, table)
    assert full.column_names == [c["name"] for c in ORDER_COLUMNS] + ["_change_type", "_bucket", "_offset", "_timestamp"]
    assert full.schema.field("_change_type").type == pa.string()
    assert_changelog_matches(model, full)
    assert {INSERT, UPDATE_BEFORE, UPDATE_AFTER, DELETE} <= set(full.column("_change_type").to_pylist())

    plain = scan(client, database, table)
    assert plain.column_names == [c["name"] for c in ORDER_COLUMNS] + ["_change_type"]
    assert plain.num_rows == full.num_rows

    # A projection keeps _change_type (last), then the metadata columns; same records.
    projected = changelog(client, database, table, columns=["amount", "user_id"])
    assert projected.column_names == ["amount", "user_id", "_change_type", "_bucket", "_offset", "_timestamp"]
    assert projected.drop_columns(["_timestamp"]).to_pylist() == \
        full.select(["amount", "user_id", "_change_type", "_bucket", "_offset"]).to_pylist()


def test_given_pk_table_when_counted_should_tell_rows_from_change_records(client, orders):
    database, table, model = orders
    assert count_of(client, database, table, "rows") == len(model.state)
    assert count_of(client, database, table, "log") == len(model.log)
    assert len(model.log) > len(model.state)
    snap = snapshot(client, database, table)
    log = changelog(client, database, table)
    for b in range(BUCKETS):
        assert count_of(client, database, table, "rows", buckets=[b]) == len(snap.bucket_rows[b])
        assert count_of(client, database, table, "log", buckets=[b]) == log.column("_bucket").to_pylist().count(b)


# ---------------------------------------------------------------- snapshot scans

def test_given_snapshot_scan_should_return_the_model_rows_in_key_order_per_bucket(client, orders):
    database, table, model = orders
    snap = snapshot(client, database, table)
    assert_snapshot_matches(model, snap, BUCKETS)
    assert [(f.name, f.type) for f in snap.table.schema] == [(f.name, f.type) for f in arrow_schema(ORDER_COLUMNS)]
    # A bucket of its own equals that bucket of the full snapshot; log_offset too.
    one = snapshot(client, database, table, buckets=[1])
    assert list(one.log_offsets) == [1] and one.log_offsets[1] == snap.log_offsets[1]
    assert one.bucket_rows[1] == snap.bucket_rows[1]
    # With no writes in between, each log_offset is the bucket's high watermark.
    latest = action1(client, "list_offsets", {"database": database, "table": table, "spec": "latest"})
    assert {o["bucket"]: o["offset"] for o in latest} == snap.log_offsets


def test_given_snapshot_scan_with_columns_should_project_in_that_order(client, orders):
    database, table, model = orders
    snap = snapshot(client, database, table, columns=["status", "order_id"])
    assert snap.table.column_names == ["status", "order_id"]
    assert sorted(snap.rows, key=lambda r: (r["order_id"], r["status"])) == \
        sorted((project(r, ["status", "order_id"]) for r in model.rows()), key=lambda r: (r["order_id"], r["status"]))


OPS = {"=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def matches(row: dict, predicates: list[dict]) -> bool:
    """SQL semantics: a comparison with null is false."""
    for p in predicates:
        v = row[p["column"]]
        if p["op"] == "is_null":
            ok = v is None
        elif p["op"] == "is_not_null":
            ok = v is not None
        elif v is None:
            ok = False
        elif p["op"] == "in":
            ok = v in p["value"]
        else:
            ok = OPS[p["op"]](v, p["value"])
        if not ok:
            return False
    return True


FILTERS = [
    [{"column": "status", "op": "=", "value": "paid"}],
    [{"column": "note", "op": "!=", "value": "gift"}],
    [{"column": "amount", "op": "<", "value": 100}],
    [{"column": "order_id", "op": "<=", "value": 3}],
    [{"column": "amount", "op": ">", "value": 250.5}],
    [{"column": "ds", "op": ">=", "value": "2025-01-02"}],
    [{"column": "user_id", "op": "in", "value": [2, 3, 5, 99]}],
    [{"column": "note", "op": "is_null"}],
    [{"column": "note", "op": "is_not_null"}],
    [{"column": "status", "op": "in", "value": ["new", "sent"]}, {"column": "amount", "op": ">=", "value": 200},
     {"column": "note", "op": "is_not_null"}],
]


@pytest.mark.parametrize("predicates", FILTERS, ids=[" AND ".join(p["op"] for p in f) for f in FILTERS])
def test_given_snapshot_filter_should_return_exactly_the_matching_rows(client, orders, predicates):
    database, table, model = orders
    expected = [r for r in model.rows() if matches(r, predicates)]
    assert 0 < len(expected) < len(model.state), "the filter should select some rows, not all"
    snap = snapshot(client, database, table, filter=predicates)
    assert sorted(snap.log_offsets) == list(range(BUCKETS))
    assert_rows_equal(sorted(snap.rows, key=model.key_of), expected, f"filter {predicates}")
    # Projection to columns the filter does not return still filters on them.
    narrow = snapshot(client, database, table, filter=predicates, columns=["order_id"])
    assert sorted(r["order_id"] for r in narrow.rows) == sorted(r["order_id"] for r in expected)


def test_given_snapshot_limit_should_cap_the_rows_after_filtering(client, orders):
    database, table, model = orders
    predicates = [{"column": "status", "op": "=", "value": "paid"}]
    matching = [r for r in model.rows() if matches(r, predicates)]
    for limit in (1, 7, len(matching) + 5):
        snap = snapshot(client, database, table, filter=predicates, limit=limit)
        assert len(snap.rows) == min(limit, len(matching))
        keys = [model.key_of(r) for r in snap.rows]
        assert len(set(keys)) == len(keys) and all(model.state[k] == r for k, r in zip(keys, snap.rows))
    assert len(snapshot(client, database, table, limit=10).rows) == 10


PK_COLUMNS = [{"name": "id", "type": "BIGINT"}, {"name": "v", "type": "BIGINT"}, {"name": "s", "type": "STRING"}]


def test_given_snapshot_while_writing_when_changelog_read_from_log_offset_should_be_exactly_once(
        client, strom, database, unique_name):
    table = unique_name("exactly_once")
    create_pk_table(client, database, table, PK_COLUMNS, ["id"], bucket_num=BUCKETS)
    model = PkModel(PK_COLUMNS, ["id"])
    rng = random.Random(99)
    schema, key_schema = arrow_schema(PK_COLUMNS), arrow_schema(PK_COLUMNS, ["id"])
    first = [{"id": i, "v": i, "s": "init"} for i in range(50)]
    model.upsert(first)
    put(client, path(database, table), [record_batch(schema, first)])
    batches = []
    for i in range(30):
        if i % 5 == 4:
            keys = [{"id": k} for k in rng.sample(range(60), 8)]
            model.delete(keys)
            batches.append(("delete", record_batch(key_schema, keys)))
        else:
            rows = [{"id": rng.randrange(60), "v": rng.randrange(1000), "s": f"b{i}"} for _ in range(20)]
            model.upsert(rows)
            batches.append(("upsert", record_batch(schema, rows)))

    snaps = [snapshot(client, database, table)]   # before the writer starts
    done = threading.Event()
    errors: list[BaseException] = []

    def writer():
        c = flight.FlightClient(strom.url)
        try:
            for kind, batch in batches:
                put(c, write_cmd(kind, database, table), [batch])
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            c.close()
            done.set()

    t = threading.Thread(target=writer)
    t.start()
    while not done.is_set() and len(snaps) < 12:
        snaps.append(snapshot(client, database, table))
    t.join(timeout=60)
    assert not errors, errors
    assert_snapshot_matches(model, snapshot(client, database, table), BUCKETS)

    def records(bucket, **bounds):
        got = scan(client, database, table, buckets=[bucket], **bounds)
        return [(r["_change_type"], project(r, model.columns)) for r in got.to_pylist()]

    final = {b: replay(model, records(b)) for b in range(BUCKETS)}
    assert {k: r for rows in final.values() for k, r in rows.items()} == model.state
    for n, snap in enumerate(snaps):
        assert sorted(snap.log_offsets) == list(range(BUCKETS))
        for b, offset in snap.log_offsets.items():
            at = {model.key_of(r): r for r in snap.bucket_rows[b]}
            # The snapshot is exactly the changelog before log_offset ...
            assert replay(model, records(b, to={"offset": offset})) == at, f"snapshot {n}, bucket {b} at {offset}"
            # ... and with the changelog from log_offset it is exactly the final state.
            after = replay(model, records(b, **{"from": {"offset": offset}}), start=at)
            assert after == final[b], f"snapshot {n}, bucket {b} from {offset}"


# ---------------------------------------------------------------- lookups

def test_given_point_lookup_ticket_should_return_found_rows_in_key_order(client, orders):
    database, table, model = orders
    rng = random.Random(1)
    present = rng.sample(sorted(model.state), 12)
    keys = present[:4] + [(99, "2025-01-01", 1), (1, "1999-01-01", 1)] + present[4:]
    rng.shuffle(keys)
    expected = [model.state[k] for k in keys if k in model.state]
    got = lookup(client, database, table, [list(k) for k in keys])
    assert got.column_names == model.columns
    assert got.to_pylist() == expected

    got = lookup(client, database, table, [list(k) for k in keys], columns=["status"])
    assert got.column_names == ["status", "user_id", "ds", "order_id"]
    assert got.to_pylist() == [project(r, got.column_names) for r in expected]
    got = lookup(client, database, table, [list(k) for k in keys], columns=["order_id", "amount"])
    assert got.column_names == ["order_id", "amount", "user_id", "ds"]
    assert got.to_pylist() == [project(r, got.column_names) for r in expected]

    none = lookup(client, database, table, [[12345, "2025-01-01", 1]])
    assert none.num_rows == 0 and none.column_names == model.columns


def prefix_rows(model: PkModel, user_ids) -> list[dict]:
    return [r for u in user_ids for r in model.rows() if r["user_id"] == u]


def test_given_prefix_lookup_ticket_should_return_every_row_of_each_user_in_key_order(client, orders):
    database, table, model = orders
    users = [7, 2, 404, 11, 2]
    got = lookup(client, database, table, [[u] for u in users], kind="prefix")
    assert got.column_names == model.columns
    expected = prefix_rows(model, users)
    assert len(expected) > 10
    assert got.to_pylist() == expected
    got = lookup(client, database, table, [[u] for u in users], kind="prefix", columns=["amount"])
    assert got.column_names == ["amount", "user_id", "ds", "order_id"]
    assert got.to_pylist() == [project(r, got.column_names) for r in expected]


def test_given_exchange_of_key_batches_should_answer_each_with_key_indexes(client, orders):
    database, table, model = orders
    rng = random.Random(2)
    # Key columns by name in any order, int32 for BIGINT: the lenient write rules.
    schema = pa.schema([("order_id", pa.int32()), ("ds", pa.string()), ("user_id", pa.int64())])
    key_batches = []
    for _ in range(3):
        keys = rng.sample(sorted(model.state), 10) + [(500 + i, "2025-01-01", 1) for i in range(3)]
        rng.shuffle(keys)
        key_batches.append(keys)
    batches = [pa.RecordBatch.from_pylist([{"user_id": u, "ds": d, "order_id": o} for u, d, o in keys], schema=schema)
               for keys in key_batches]
    request = {"lookup": "primary_key", "database": database, "table": table, "columns": ["amount", "status"]}
    answers = exchange(client, request, batches)
    assert len(answers) == len(batches)
    for keys, answer in zip(key_batches, answers):
        assert answer.schema.names == ["_key_index", "amount", "status", "user_id", "ds", "order_id"]
        assert answer.schema.field("_key_index").type == pa.int32()
        expected = [dict(_key_index=i, **project(model.state[k], answer.schema.names[1:]))
                    for i, k in enumerate(keys) if k in model.state]
        assert answer.to_pylist() == expected


def test_given_prefix_exchange_should_answer_every_row_per_user(client, orders):
    database, table, model = orders
    users = [[3, 404, 9], [1], [15, 15]]
    batches = [pa.RecordBatch.from_pylist([{"user_id": u} for u in us], schema=pa.schema([("user_id", pa.int32())]))
               for us in users]
    answers = exchange(client, {"lookup": "prefix", "database": database, "table": table}, batches)
    for us, answer in zip(users, answers):
        assert answer.schema.names == ["_key_index"] + model.columns
        expected = [dict(_key_index=i, **r) for i, u in enumerate(us) for r in prefix_rows(model, [u])]
        assert answer.to_pylist() == expected


TYPED_COLUMNS = [
    {"name": "d", "type": "DATE"}, {"name": "ts", "type": "TIMESTAMP(3)"}, {"name": "tsl", "type": "TIMESTAMP_LTZ(3)"},
    {"name": "price", "type": "DECIMAL(10, 2)"}, {"name": "tag", "type": "BYTES"}, {"name": "v", "type": "BIGINT"},
]
TYPED_KEY = ["d", "ts", "tsl", "price", "tag"]


def test_given_keys_of_many_types_when_looked_up_with_each_json_spelling_should_find_them(client, database, unique_name):
    table = unique_name("typed")
    create_pk_table(client, database, table, TYPED_COLUMNS, TYPED_KEY, bucket_num=2)
    utc = dt.timezone.utc
    rows = [{"d": dt.date(2024, 6, 1) + dt.timedelta(days=i), "ts": dt.datetime(2024, 6, 1, 12, 0, 0, 250_000 * i),
             "tsl": dt.datetime(2024, 6, 1, 12, i, tzinfo=utc), "price": decimal.Decimal(f"12.5{i}"),
             "tag": f"t{i}\u00e9".encode(), "v": i} for i in range(3)]
    put(client, path(database, table), [record_batch(arrow_schema(TYPED_COLUMNS), rows)])
    epoch = dt.date(1970, 1, 1)
    for i, row in enumerate(rows):
        ms = int((row["ts"] - dt.datetime(1970, 1, 1)).total_seconds() * 1000)
        spellings = [
            [row["d"].isoformat(), row["ts"].isoformat(timespec="milliseconds"), f"2024-06-01T12:{i:02d}:00Z",
             f"12.5{i}", f"t{i}\u00e9", ],
            [(row["d"] - epoch).days, ms, f"2024-06-01T14:{i:02d}:00+02:00", float(f"12.5{i}"), list(row["tag"])],
        ]
        for key in spellings:
            got = lookup(client, database, table, [key])
            assert got.to_pylist() == [row], f"key spelled {key}"


def test_given_insert_if_not_exists_without_auto_increment_should_insert_nulls(client, database, unique_name):
    table = unique_name("iine")
    create_pk_table(client, database, table, PK_COLUMNS, ["id"], bucket_num=2)
    model = PkModel(PK_COLUMNS, ["id"])
    model.upsert([{"id": 1, "v": 10, "s": "x"}])
    put(client, path(database, table), [record_batch(arrow_schema(PK_COLUMNS), [{"id": 1, "v": 10, "s": "x"}])])
    got = lookup(client, database, table, [[2], [1], [3]], insert_if_not_exists=True)
    model.upsert([{"id": 2, "v": None, "s": None}, {"id": 3, "v": None, "s": None}])
    assert got.to_pylist() == [model.state[(2,)], model.state[(1,)], model.state[(3,)]]
    assert_snapshot_matches(model, snapshot(client, database, table), 2)
    assert_changelog_matches(model, changelog(client, database, table))


# ---------------------------------------------------------------- auto-increment ids

MAPPING_COLUMNS = [{"name": "user_id", "type": "BIGINT"}, {"name": "uid_int64", "type": "BIGINT"},
                   {"name": "update_time", "type": "TIMESTAMP(3)"}]
MAPPING_OPTIONS = {"auto-increment.fields": "uid_int64"}


def map_users(client, database, table, users, **extra) -> dict[int, int]:
    got = lookup(client, database, table, [[u] for u in users], insert_if_not_exists=True, **extra)
    assert got.column("user_id").to_pylist() == list(users), "every key is answered, in request order"
    ids = dict(zip(got.column("user_id").to_pylist(), got.column("uid_int64").to_pylist()))
    assert None not in ids.values()
    return ids


def assert_new_ids(known: dict[int, int], got: dict[int, int]) -> None:
    """Known users keep their id; new users get unique ids above every id handed out before."""
    for u, i in got.items():
        if u in known:
            assert i == known[u], f"user {u} had id {known[u]}, now {i}"
    new = [i for u, i in got.items() if u not in known]
    assert len(set(new)) == len(new), f"ids handed out twice: {sorted(new)}"
    if known and new:
        assert min(new) > max(known.values()), f"new ids {sorted(new)} not above {max(known.values())}"
    known.update(got)


def test_given_auto_increment_table_when_looked_up_with_insert_should_map_users_to_stable_ids(
        client, database, unique_name):
    table = unique_name("user_mapping")
    create_pk_table(client, database, table, MAPPING_COLUMNS, ["user_id"], bucket_key=["user_id"], bucket_num=4,
                    options=MAPPING_OPTIONS)
    known: dict[int, int] = {}
    assert_new_ids(known, map_users(client, database, table, range(1001, 1011)))
    assert_new_ids(known, map_users(client, database, table, range(1005, 1016)))
    assert count_of(client, database, table, "log") == 15
    # Repeated lookups, with or without insert, return the same ids and write nothing.
    assert_new_ids(known, map_users(client, database, table, [1015, 1001, 1008]))
    plain = lookup(client, database, table, [[u] for u in known])
    assert dict(zip(plain.column("user_id").to_pylist(), plain.column("uid_int64").to_pylist())) == known
    assert count_of(client, database, table, "log") == 15

    log = changelog(client, database, table)
    assert set(log.column("_change_type").to_pylist()) == {INSERT}
    assert dict(zip(log.column("user_id").to_pylist(), log.column("uid_int64").to_pylist())) == known
    assert set(log.column("update_time").to_pylist()) == {None}

    # Upserts leave the id out: a new key gets the next id, an update keeps the stored one.
    when = dt.datetime(2025, 1, 1, 8, 0)
    rows = [{"user_id": 1003, "update_time": when}, {"user_id": 2001, "update_time": when}]
    put(client, write_cmd("upsert", database, table),
        [record_batch(arrow_schema(MAPPING_COLUMNS, ["user_id", "update_time"]), rows)])
    got = lookup(client, database, table, [[1003], [2001]])
    assert got.column("update_time").to_pylist() == [when, when]
    assert_new_ids(known, dict(zip(got.column("user_id").to_pylist(), got.column("uid_int64").to_pylist())))

    # DoExchange with insert_if_not_exists.
    keys = pa.RecordBatch.from_pylist([{"user_id": u} for u in (1014, 3001, 3002)], schema=pa.schema([("user_id", pa.int64())]))
    (answer,) = exchange(client, {"lookup": "primary_key", "database": database, "table": table,
                                  "insert_if_not_exists": True, "columns": ["uid_int64"]}, [keys])
    assert answer.schema.names == ["_key_index", "uid_int64", "user_id"]
    assert answer.column("_key_index").to_pylist() == [0, 1, 2]
    assert_new_ids(known, dict(zip(answer.column("user_id").to_pylist(), answer.column("uid_int64").to_pylist())))
    assert count_of(client, database, table, "rows") == len(known) == 18


def test_given_auto_increment_ids_when_node_restarts_should_keep_them_and_never_reuse_one(tmp_path):
    data_dir = tmp_path / "data"
    known: dict[int, int] = {}
    node = start_strom(data_dir, tmp_path / "first.log")
    client = flight.FlightClient(node.url)
    try:
        action1(client, "create_database", {"name": "ai"})
        create_pk_table(client, "ai", "user_mapping", MAPPING_COLUMNS, ["user_id"], bucket_num=3, options=MAPPING_OPTIONS)
        assert_new_ids(known, map_users(client, "ai", "user_mapping", range(1, 21)))
        assert_new_ids(known, map_users(client, "ai", "user_mapping", range(15, 31)))
    finally:
        client.close()
        assert node.stop() == 0, node.log_tail()

    node = start_strom(data_dir, tmp_path / "second.log")
    client = flight.FlightClient(node.url)
    try:
        info = action1(client, "get_table", {"database": "ai", "table": "user_mapping"})
        assert info["kind"] == "primary_key" and info["options"]["auto-increment.fields"] == "uid_int64"
        plain = lookup(client, "ai", "user_mapping", [[u] for u in range(1, 31)])
        assert dict(zip(plain.column("user_id").to_pylist(), plain.column("uid_int64").to_pylist())) == known
        assert count_of(client, "ai", "user_mapping", "rows") == 30
        assert_new_ids(known, map_users(client, "ai", "user_mapping", [5, 40, 41, 30, 42]))
        rows = [{"user_id": 50, "update_time": dt.datetime(2025, 2, 1)}]
        put(client, write_cmd("upsert", "ai", "user_mapping", target_columns=["update_time"]),
            [record_batch(arrow_schema(MAPPING_COLUMNS, ["user_id", "update_time"]), rows)])
        assert_new_ids(known, map_users(client, "ai", "user_mapping", [50]))
        snap = snapshot(client, "ai", "user_mapping")
        assert {r["user_id"]: r["uid_int64"] for r in snap.rows} == known
    finally:
        client.close()
        assert node.stop() == 0, node.log_tail()
