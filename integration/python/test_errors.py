"""Bad requests get the documented gRPC status (see the mapping table in flight_helpers.py),
a message naming what is at fault, and write nothing."""

from __future__ import annotations

import json
import re

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from flight_helpers import action, action1, call_options, count, path, put, raises_grpc, scan, ticket

COLUMNS = [
    {"name": "id", "type": "BIGINT", "nullable": False},
    {"name": "qty", "type": "INT"},
    {"name": "name", "type": "STRING"},
    {"name": "amount", "type": "DOUBLE"},
]
SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), ("qty", pa.int32()),
                    ("name", pa.string()), ("amount", pa.float64())])
BASE_ROWS = 10


def good_batch(start: int, n: int) -> pa.RecordBatch:
    ids = list(range(start, start + n))
    return pa.record_batch([pa.array(ids, pa.int64()), pa.array([i % 7 for i in ids], pa.int32()),
                            pa.array([f"n{i}" for i in ids]), pa.array([i * 1.5 for i in ids])],
                           schema=SCHEMA)


@pytest.fixture(scope="module")
def strict(client, database):
    """A 4-column log table holding BASE_ROWS rows; each rejected write must leave it so."""
    action1(client, "create_table", {"database": database, "table": "strict", "columns": COLUMNS})
    put(client, path(database, "strict"), [good_batch(0, BASE_ROWS)])
    return database, "strict"


@pytest.fixture
def unchanged(client, strict):
    """Asserts after the test that the strict table still holds exactly what it held before."""
    before = count(client, *strict)
    yield strict
    assert count(client, *strict) == before, "a rejected request wrote rows"


# ---------------------------------------------------------------- tickets and actions

@pytest.mark.parametrize("raw, needle", [
    (b"\x00\x01garbage", "json"),
    (b"", "empty"),
    (b"[1, 2]", "object"),
    (b'{"foo": 1}', "foo"),
    (b'{"scan": "log", "database": "x", "table": "y", "colums": ["a"]}', "colums"),
    (b'{"scan": "sideways", "database": "x", "table": "y"}', "sideways"),
])
def test_given_malformed_ticket_when_do_get_should_be_invalid_argument(client, raw, needle):
    with raises_grpc("INVALID_ARGUMENT", needle):
        client.do_get(flight.Ticket(raw), options=call_options()).read_all()


def test_given_unknown_action_should_be_invalid_argument_naming_it(client):
    with raises_grpc("INVALID_ARGUMENT", "frobnicate"):
        action(client, "frobnicate", {})


def test_given_action_body_not_json_should_be_invalid_argument(client):
    with raises_grpc("INVALID_ARGUMENT", "json"):
        list(client.do_action(flight.Action("create_database", b"{not json"), options=call_options()))


def test_given_action_with_misspelled_field_should_be_invalid_argument_naming_it(client, database):
    with raises_grpc("INVALID_ARGUMENT", "tabel"):
        action(client, "get_table", {"database": database, "tabel": "strict"})


# ---------------------------------------------------------------- unknown things

def test_given_unknown_table_should_be_not_found_everywhere(client, database):
    with raises_grpc("NOT_FOUND", "nosuchtable"):
        scan(client, database, "nosuchtable")
    with raises_grpc("NOT_FOUND", "nosuchtable"):
        client.do_get(ticket(count="log", database=database, table="nosuchtable"), options=call_options()).read_all()
    with raises_grpc("NOT_FOUND", "nosuchtable"):
        put(client, path(database, "nosuchtable"), [good_batch(0, 1)])
    with raises_grpc("NOT_FOUND", "nosuchtable"):
        client.get_flight_info(path(database, "nosuchtable"), options=call_options())
    with raises_grpc("NOT_FOUND", "nosuchtable"):
        client.get_schema(path(database, "nosuchtable"), options=call_options())
    with raises_grpc("NOT_FOUND", "nosuchtable"):
        action(client, "get_table", {"database": database, "table": "nosuchtable"})


def test_given_unknown_database_should_be_not_found(client):
    with raises_grpc("NOT_FOUND", "nosuchdb"):
        action(client, "create_table", {"database": "nosuchdb", "table": "t", "columns": COLUMNS})
    with raises_grpc("NOT_FOUND", "nosuchdb"):
        action(client, "list_tables", {"database": "nosuchdb"})


def test_given_unknown_projected_column_should_be_invalid_argument_naming_it(client, strict):
    with raises_grpc("INVALID_ARGUMENT", "nosuchcolumn"):
        scan(client, *strict, columns=["id", "nosuchcolumn"])


# ---------------------------------------------------------------- writes that do not match

def test_given_batch_missing_a_column_should_be_rejected_naming_it(client, unchanged):
    bad = good_batch(100, 5).drop_columns(["qty"])
    with raises_grpc("INVALID_ARGUMENT", "qty"):
        put(client, path(*unchanged), [bad])


def test_given_batch_with_an_extra_column_should_be_rejected_naming_it(client, unchanged):
    bad = good_batch(100, 5).append_column("bogus", pa.array([1] * 5, pa.int64()))
    with raises_grpc("INVALID_ARGUMENT", "bogus"):
        put(client, path(*unchanged), [bad])


def test_given_string_into_bigint_column_should_be_rejected_naming_it(client, unchanged):
    good = good_batch(100, 5)
    bad = good.set_column(0, pa.field("id", pa.string(), nullable=False), pa.array(["1", "2", "3", "4", "5"]))
    with raises_grpc("INVALID_ARGUMENT", "id"):
        put(client, path(*unchanged), [bad])


@pytest.mark.parametrize("declared_nullable", [True, False], ids=["field-nullable", "field-not-null"])
def test_given_null_in_not_null_column_should_be_rejected_naming_column_and_row(client, unchanged, declared_nullable):
    # Whether the client's own schema declares the field nullable or (wrongly) NOT NULL,
    # the null is data the table refuses, and the message says where it is.
    good = good_batch(100, 6)
    ids = pa.array([100, 101, 102, None, 104, 105], pa.int64())
    bad = good.set_column(0, pa.field("id", pa.int64(), nullable=declared_nullable), ids)
    with raises_grpc("INVALID_ARGUMENT", "id") as err:
        put(client, path(*unchanged), [bad])
    # The row is the 0-based index within the batch (the fourth row here).
    assert re.search(r"\brow\b\D{0,12}\b3\b", err.message), f"the message should name row 3: {err.message}"


def test_given_second_batch_bad_when_putting_should_keep_the_first_and_reject_the_second(client, strict):
    before = count(client, *strict)
    writer, reader = client.do_put(path(*strict), SCHEMA, options=call_options())
    with raises_grpc("INVALID_ARGUMENT", "id"):
        try:
            writer.write_batch(good_batch(200, 4))
            ack = json.loads(reader.read().to_pybytes())
            assert ack["rows"] == 4
            # Same schema as the stream (pyarrow insists), but a null in the NOT NULL
            # column: data the server must reject.
            bad = pa.RecordBatch.from_arrays(
                [pa.array([1, None], pa.int64()), pa.array([1, 2], pa.int32()), pa.array(["a", "b"]),
                 pa.array([1.0, 2.0])], schema=SCHEMA)
            writer.write_batch(bad)
            writer.done_writing()
            reader.read()
        finally:
            writer.close()
    assert count(client, *strict) == before + 4


# ---------------------------------------------------------------- lenient spelling, strict data

def test_given_nullable_field_without_nulls_for_not_null_column_should_be_accepted(client, strict):
    before = count(client, *strict)
    good = good_batch(300, 5)
    relaxed = good.cast(SCHEMA.set(0, pa.field("id", pa.int64(), nullable=True)))
    assert relaxed.schema.field("id").nullable
    acks = put(client, path(*strict), [relaxed])
    assert acks[0]["rows"] == 5
    assert count(client, *strict) == before + 5


def test_given_compatible_types_when_appending_should_safe_cast_them(client, database, unique_name):
    table = unique_name("cast")
    action1(client, "create_table", {"database": database, "table": table, "columns": COLUMNS})
    # int32 into BIGINT, int64 (in range) into INT, large_string into STRING, float32 into DOUBLE.
    batch = pa.RecordBatch.from_arrays(
        [pa.array([1, 2, 3], pa.int32()), pa.array([7, -8, 2**31 - 1], pa.int64()),
         pa.array(["a", "b", None], pa.large_string()), pa.array([0.5, 1.25, -2.0], pa.float32())],
        names=["id", "qty", "name", "amount"])
    assert put(client, path(database, table), [batch])[0]["rows"] == 3
    got = scan(client, database, table)
    assert got.schema.equals(SCHEMA), got.schema
    assert got.sort_by("id").to_pydict() == {
        "id": [1, 2, 3], "qty": [7, -8, 2**31 - 1], "name": ["a", "b", None], "amount": [0.5, 1.25, -2.0]}


def test_given_int64_overflowing_an_int_column_should_be_rejected_naming_it(client, unchanged):
    batch = pa.RecordBatch.from_arrays(
        [pa.array([500, 501], pa.int64()), pa.array([1, 2**40], pa.int64()),
         pa.array(["x", "y"]), pa.array([1.0, 2.0])], names=["id", "qty", "name", "amount"])
    with raises_grpc("INVALID_ARGUMENT", "qty"):
        put(client, path(*unchanged), [batch])


def test_given_columns_in_another_order_should_match_by_name(client, strict):
    before = count(client, *strict)
    shuffled = good_batch(400, 3).select(["amount", "name", "id", "qty"])
    assert put(client, path(*strict), [shuffled])[0]["rows"] == 3
    assert count(client, *strict) == before + 3
    got = scan(client, *strict, columns=["id", "name"])
    assert {400, 401, 402} <= set(got.column("id").to_pylist())


# ---------------------------------------------------------------- DDL

def test_given_existing_table_when_created_again_should_be_already_exists(client, strict):
    database, table = strict
    with raises_grpc("ALREADY_EXISTS", table):
        action(client, "create_table", {"database": database, "table": table, "columns": COLUMNS})
    again = action1(client, "create_table", {"database": database, "table": table, "columns": COLUMNS,
                                              "if_not_exists": True})
    assert again["table"] == table
    assert count(client, *strict) >= 0  # still there, still readable


def test_given_existing_database_when_created_again_should_be_already_exists(client, database):
    with raises_grpc("ALREADY_EXISTS", database):
        action(client, "create_database", {"name": database})
    action(client, "create_database", {"name": database, "if_not_exists": True})


@pytest.mark.parametrize("options, needle", [
    ({"table.log.ttl": "banana"}, "table.log.ttl"),
    ({"table.no.such.option": "1"}, "table.no.such.option"),
    ({"table.log.arrow.compression.type": "RAR"}, "table.log.arrow.compression.type"),
])
def test_given_bad_or_unknown_option_should_be_invalid_argument_naming_it(client, database, unique_name, options, needle):
    table = unique_name("opt")
    with raises_grpc("INVALID_ARGUMENT", needle):
        action(client, "create_table", {"database": database, "table": table, "columns": COLUMNS,
                                        "options": options})
    with raises_grpc("NOT_FOUND", table):
        action(client, "get_table", {"database": database, "table": table})


def test_given_bad_sql_type_should_be_invalid_argument_naming_it(client, database, unique_name):
    table = unique_name("type")
    with raises_grpc("INVALID_ARGUMENT", "BIGINTEGER"):
        action(client, "create_table", {"database": database, "table": table,
                                        "columns": [{"name": "x", "type": "BIGINTEGER"}]})
    with raises_grpc("NOT_FOUND", table):
        action(client, "get_table", {"database": database, "table": table})


def test_given_valid_options_should_be_stored_with_the_table(client, database, unique_name):
    table = unique_name("opts")
    info = action1(client, "create_table", {
        "database": database, "table": table, "columns": COLUMNS, "bucket_num": 3,
        "options": {"table.log.ttl": "7 d", "table.log.arrow.compression.type": "LZ4_FRAME",
                    "client.writer.batch-size": "2mb"}})
    assert info["bucket_num"] == 3
    assert info["options"]["table.log.arrow.compression.type"] == "LZ4_FRAME"
    assert info["options"]["client.writer.batch-size"] == "2mb"


def test_given_non_empty_database_when_dropped_without_cascade_should_be_failed_precondition(client, unique_name):
    db = unique_name("dropme")
    action1(client, "create_database", {"name": db})
    action1(client, "create_table", {"database": db, "table": "t", "columns": COLUMNS})
    with raises_grpc("FAILED_PRECONDITION", db):
        action(client, "drop_database", {"name": db})
    assert db in action1(client, "list_databases")
    action(client, "drop_database", {"name": db, "cascade": True})
    assert db not in action1(client, "list_databases")


def test_given_dropped_table_should_be_not_found(client, database, unique_name):
    table = unique_name("gone")
    action1(client, "create_table", {"database": database, "table": table, "columns": COLUMNS})
    put(client, path(database, table), [good_batch(0, 3)])
    action(client, "drop_table", {"database": database, "table": table})
    with raises_grpc("NOT_FOUND", table):
        scan(client, database, table)
    with raises_grpc("NOT_FOUND", table):
        action(client, "drop_table", {"database": database, "table": table})
    action(client, "drop_table", {"database": database, "table": table, "if_exists": True})


def test_given_timestamp_units_when_appending_should_accept_exact_and_reject_lossy(client, database, unique_name):
    table = unique_name("tsunit")
    action1(client, "create_table", {"database": database, "table": table,
                                     "columns": [{"name": "ts", "type": "TIMESTAMP(3)"}]})
    exact = pa.RecordBatch.from_arrays([pa.array([1_000, 2_000_000], pa.timestamp("us"))], names=["ts"])
    assert put(client, path(database, table), [exact])[0]["rows"] == 2
    lossy = pa.RecordBatch.from_arrays([pa.array([3_000, 4_000_001], pa.timestamp("us"))], names=["ts"])
    with raises_grpc("INVALID_ARGUMENT", "ts") as err:
        put(client, path(database, table), [lossy])
    assert re.search(r"\brow\b\D{0,12}\b1\b", err.message), err.message
    got = scan(client, database, table)
    assert got.schema.field("ts").type == pa.timestamp("ms")
    assert got.column("ts").cast(pa.int64()).to_pylist() == [1, 2_000]


def test_given_empty_batch_when_appending_should_ack_zero_rows(client, strict):
    before = count(client, *strict)
    acks = put(client, path(*strict), [good_batch(0, 0), good_batch(700, 2)])
    assert acks[0]["rows"] == 0 and sum(b["count"] for b in acks[0]["buckets"]) == 0
    assert acks[1]["rows"] == 2
    assert count(client, *strict) == before + 2
