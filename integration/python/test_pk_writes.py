"""Writes to primary-key tables with plain pyarrow.flight: full-row upserts (PATH and CMD),
partial updates of a wide table by two concurrent writers, deletes, delete behaviours, the FULL
and WAL changelog images, and idempotent retries. Every expectation comes from pk_model.PkModel
fed with the same writes."""

from __future__ import annotations

import random
import threading

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as flight
import pytest

from flight_helpers import (action1, arrow_schema, call_options, changelog, check_pk_ack, count_of, create_pk_table,
                            decode_ack, path, put, raises_grpc, record_batch, snapshot, write_cmd)
from pk_model import (DELETE, INSERT, UPDATE_AFTER, UPDATE_BEFORE, PkModel, Rejected, assert_changelog_matches,
                      assert_snapshot_matches, changelog_records, replay)

COLUMNS = [
    {"name": "id", "type": "BIGINT"},          # a key column: an omitted nullable means NOT NULL
    {"name": "name", "type": "STRING"},
    {"name": "qty", "type": "INT"},
    {"name": "price", "type": "DOUBLE"},
]
KEY = ["id"]
BUCKETS = 3


def random_rows(rng: random.Random, model: PkModel, n: int, key_space: int) -> list[dict]:
    """Full rows: new keys, changed rows, some unchanged re-writes and keys repeated in a batch."""
    rows = []
    for _ in range(n):
        k = rng.randrange(key_space)
        stored = model.state.get((k,))
        if stored is not None and rng.random() < 0.2:
            rows.append(dict(stored))                       # a no-op write: emits nothing
            continue
        rows.append({"id": k, "name": rng.choice(["ann", "bob", "cy", None]),
                     "qty": rng.randrange(-5, 1000), "price": rng.choice([None, rng.randrange(100) / 4])})
    return rows


def check_state(client, database, table, model, bucket_num=BUCKETS):
    assert_snapshot_matches(model, snapshot(client, database, table), bucket_num)
    assert_changelog_matches(model, changelog(client, database, table))
    assert count_of(client, database, table, "rows") == len(model.state)
    assert count_of(client, database, table, "log") == len(model.log)


def new_table(client, database, name, columns=COLUMNS, key=KEY, options=None, **extra) -> PkModel:
    create_pk_table(client, database, name, columns, key, bucket_num=extra.pop("bucket_num", BUCKETS),
                    options=options or {}, **extra)
    return PkModel(columns, key, options)


# ---------------------------------------------------------------- full-row upserts

@pytest.mark.parametrize("descriptor", ["path", "cmd"])
def test_given_full_rows_when_upserted_should_keep_the_last_row_per_key(client, database, unique_name, descriptor):
    table = unique_name("upsert")
    model = new_table(client, database, table)
    schema = arrow_schema(COLUMNS)
    rng = random.Random(11)
    batches, expected_changes = [], []
    for _ in range(6):
        rows = random_rows(rng, model, 40, key_space=60)
        batches.append(record_batch(schema, rows))
        expected_changes.append(len(model.upsert(rows)))
    desc = path(database, table) if descriptor == "path" else write_cmd("upsert", database, table)
    acks = put(client, desc, batches)
    for ack, batch, changes in zip(acks, batches, expected_changes):
        check_pk_ack(ack, batch.num_rows, changes, BUCKETS)
    check_state(client, database, table, model)


def test_given_one_key_written_twice_in_a_batch_should_merge_in_batch_order(client, database, unique_name):
    table = unique_name("twice")
    model = new_table(client, database, table)
    rows = [{"id": 1, "name": "first", "qty": 1, "price": 1.0}, {"id": 1, "name": "second", "qty": 2, "price": 2.0},
            {"id": 2, "name": "x", "qty": 3, "price": None}, {"id": 1, "name": "third", "qty": 3, "price": 3.0}]
    changes = model.upsert(rows)
    assert [c for c, _ in changes] == [INSERT, UPDATE_BEFORE, UPDATE_AFTER, INSERT, UPDATE_BEFORE, UPDATE_AFTER]
    (ack,) = put(client, write_cmd("upsert", database, table), [record_batch(arrow_schema(COLUMNS), rows)])
    check_pk_ack(ack, 4, len(changes), BUCKETS)
    check_state(client, database, table, model)


# ---------------------------------------------------------------- partial updates: the wide table

WIDE_COLUMNS = [
    {"name": "shop_id", "type": "BIGINT", "nullable": False},
    {"name": "stat_date", "type": "STRING", "nullable": False},
    {"name": "stat_hour", "type": "STRING", "nullable": False},
    {"name": "exp_cnt", "type": "BIGINT"},     # exposure count: written by one job
    {"name": "page_cnt", "type": "BIGINT"},    # page view count: written by another
]
WIDE_KEY = ["shop_id", "stat_date", "stat_hour"]


def metric_batches(seed: int, column: str, batches: int, keys: list[tuple]) -> list[list[dict]]:
    """Per batch, distinct keys with a new running total each (a pre-aggregating job's output)."""
    rng = random.Random(seed)
    totals: dict[tuple, int] = {}
    out = []
    for _ in range(batches):
        rows = []
        for k in rng.sample(keys, rng.randrange(10, 30)):
            totals[k] = totals.get(k, 0) + rng.randrange(1, 50)
            rows.append(dict(zip(WIDE_KEY, k), **{column: totals[k]}))
        out.append(rows)
    return out


def test_given_two_writers_of_their_own_columns_when_concurrent_should_merge_into_one_wide_row(
        client, strom, database, unique_name):
    table = unique_name("shop_stat_wide")
    info = create_pk_table(client, database, table, WIDE_COLUMNS, WIDE_KEY, bucket_key=["shop_id"], bucket_num=4)
    assert info["bucket_key"] == ["shop_id"]
    keys = [(s, d, f"{h:02d}") for s in range(1, 9) for d in ("20250101", "20250102") for h in range(0, 24, 6)]
    jobs = {"exp_cnt": metric_batches(1, "exp_cnt", 12, keys), "page_cnt": metric_batches(2, "page_cnt", 12, keys)}

    # The columns are disjoint, so the final rows do not depend on how the writers interleave.
    model = PkModel(WIDE_COLUMNS, WIDE_KEY)
    for column, batches in jobs.items():
        for rows in batches:
            model.upsert(rows, targets=[column])

    start = threading.Barrier(len(jobs))
    acks: dict[str, list] = {}
    errors: list[BaseException] = []

    def run(column: str):
        c = flight.FlightClient(strom.url)
        try:
            schema = arrow_schema(WIDE_COLUMNS, WIDE_KEY + [column])
            batches = [record_batch(schema, rows) for rows in jobs[column]]
            start.wait(timeout=30)
            acks[column] = put(c, write_cmd("upsert", database, table, target_columns=[column]), batches)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            c.close()

    threads = [threading.Thread(target=run, args=(column,)) for column in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    for column, batches in jobs.items():
        assert [a["rows"] for a in acks[column]] == [len(rows) for rows in batches]

    assert_snapshot_matches(model, snapshot(client, database, table), 4)
    # Every write changes its row: the first write of a key is +I, every later one -U/+U.
    writes = sum(len(rows) for batches in jobs.values() for rows in batches)
    assert len(model.log) == 2 * writes - len(model.state)
    assert sum(b["count"] for column in acks for a in acks[column] for b in a["buckets"]) == len(model.log)
    assert count_of(client, database, table, "log") == len(model.log)

    records = changelog_records(model, changelog(client, database, table))
    assert replay(model, [(kind, row) for _, kind, row in records]) == model.state
    # Per key and column, the changelog shows that writer's totals in the order it wrote them:
    # no update of one writer was lost or reordered by the other's.
    for column, batches in jobs.items():
        written: dict[tuple, list] = {}
        for rows in batches:
            for r in rows:
                written.setdefault(tuple(r[c] for c in WIDE_KEY), []).append(r[column])
        seen: dict[tuple, list] = {}
        for _, kind, row in records:
            v = row[column]
            if kind in (INSERT, UPDATE_AFTER) and v is not None:
                history = seen.setdefault(model.key_of(row), [])
                if not history or history[-1] != v:
                    history.append(v)
        assert seen == written, f"{column}: values in the changelog differ from the writes"


def test_given_partial_update_of_a_new_key_should_leave_the_other_columns_null(client, database, unique_name):
    table = unique_name("partial")
    model = new_table(client, database, table)
    full = [{"id": 1, "name": "kept", "qty": 5, "price": 1.5}]
    partial = [{"id": 1, "qty": 6}, {"id": 2, "qty": 7}]
    put(client, path(database, table), [record_batch(arrow_schema(COLUMNS), full)])
    model.upsert(full)
    changes = model.upsert(partial, targets=["qty"])
    # Target columns may be sent in any order, the key columns among them.
    schema = arrow_schema(COLUMNS, ["qty", "id"])
    (ack,) = put(client, write_cmd("upsert", database, table, target_columns=["qty"]), [record_batch(schema, partial)])
    check_pk_ack(ack, 2, len(changes), BUCKETS)
    assert model.state[(2,)] == {"id": 2, "name": None, "qty": 7, "price": None}
    check_state(client, database, table, model)


# ---------------------------------------------------------------- deletes

def test_given_deletes_of_keys_and_of_full_rows_should_remove_the_stored_rows(client, database, unique_name):
    table = unique_name("delete")
    model = new_table(client, database, table)
    schema = arrow_schema(COLUMNS)
    rows = [{"id": i, "name": f"n{i}", "qty": i, "price": i / 2} for i in range(30)]
    model.upsert(rows)
    put(client, path(database, table), [record_batch(schema, rows)])

    # Key-only: present keys are deleted (-D with the stored row), missing ones change nothing.
    keys = [{"id": i} for i in (3, 4, 5, 100, 101, 4)]
    expected = model.delete(keys)
    assert [c for c, _ in expected] == [DELETE] * 3
    (ack,) = put(client, write_cmd("delete", database, table), [record_batch(arrow_schema(COLUMNS, KEY), keys)])
    check_pk_ack(ack, len(keys), 3, BUCKETS)

    # Full rows whose other values differ from the stored ones: only the key counts.
    stale = [{"id": i, "name": "stale", "qty": -1, "price": None} for i in (10, 11)]
    expected = model.delete(stale)
    assert [r["name"] for _, r in expected] == ["n10", "n11"], "a -D carries the stored row"
    (ack,) = put(client, write_cmd("delete", database, table), [record_batch(schema, stale)])
    check_pk_ack(ack, 2, 2, BUCKETS)

    # Rows read back from the changelog can be sent as they are (its extra columns ignored).
    log = changelog(client, database, table, metadata_columns=False)
    back = log.filter(pc.is_in(log.column("id"), pa.array([20, 21], pa.int64())))
    assert back.column("_change_type").to_pylist() == [INSERT, INSERT]
    back = back.select([c["name"] for c in COLUMNS]).combine_chunks()
    expected = model.delete(back.to_pylist())
    assert len(expected) == 2
    (ack,) = put(client, write_cmd("delete", database, table), back.to_batches())
    check_pk_ack(ack, back.num_rows, 2, BUCKETS)

    # A deleted key comes back as a fresh insert.
    again = [{"id": 4, "name": "back", "qty": 40, "price": 4.0}]
    assert [c for c, _ in model.upsert(again)] == [INSERT]
    put(client, path(database, table), [record_batch(schema, again)])
    check_state(client, database, table, model)


@pytest.mark.parametrize("behavior", ["IGNORE", "DISABLE"])
def test_given_delete_behavior_when_deleting_should_ignore_or_refuse(client, database, unique_name, behavior):
    table = unique_name(f"del_{behavior.lower()}")
    options = {"table.delete.behavior": behavior}
    model = new_table(client, database, table, options=options)
    info = action1(client, "get_table", {"database": database, "table": table})
    assert info["options"]["table.delete.behavior"] == behavior
    rows = [{"id": i, "name": "x", "qty": i, "price": 0.5} for i in range(8)]
    model.upsert(rows)
    put(client, path(database, table), [record_batch(arrow_schema(COLUMNS), rows)])
    keys = record_batch(arrow_schema(COLUMNS, KEY), [{"id": i} for i in range(0, 8, 2)])
    if behavior == "IGNORE":
        assert model.delete(keys.to_pylist()) == []
        (ack,) = put(client, write_cmd("delete", database, table), [keys])
        check_pk_ack(ack, keys.num_rows, 0, BUCKETS)
    else:
        with pytest.raises(Rejected):
            model.delete(keys.to_pylist())
        with raises_grpc("INVALID_ARGUMENT", "table.delete.behavior"):
            put(client, write_cmd("delete", database, table), [keys])
    check_state(client, database, table, model)


# ---------------------------------------------------------------- changelog images

@pytest.mark.parametrize("image", ["FULL", "WAL"])
def test_given_changelog_image_should_emit_update_befores_only_for_full(client, database, unique_name, image):
    table = unique_name(f"image_{image.lower()}")
    model = new_table(client, database, table, options={"table.changelog.image": image}, bucket_num=2)
    schema = arrow_schema(COLUMNS)
    rng = random.Random(5)
    for _ in range(4):
        rows = random_rows(rng, model, 25, key_space=20)
        changes = model.upsert(rows)
        (ack,) = put(client, path(database, table), [record_batch(schema, rows)])
        check_pk_ack(ack, len(rows), len(changes), 2)
    partial = [{"id": k, "qty": 7_000 + k} for k in range(0, 20, 3)]
    changes = model.upsert(partial, targets=["qty"])
    (ack,) = put(client, write_cmd("upsert", database, table, target_columns=["qty"]),
                 [record_batch(arrow_schema(COLUMNS, ["id", "qty"]), partial)])
    check_pk_ack(ack, len(partial), len(changes), 2)
    keys = [{"id": k} for k in range(0, 20, 4)]
    changes = model.delete(keys)
    (ack,) = put(client, write_cmd("delete", database, table), [record_batch(arrow_schema(COLUMNS, KEY), keys)])
    check_pk_ack(ack, len(keys), len(changes), 2)

    check_state(client, database, table, model, bucket_num=2)
    kinds = changelog(client, database, table).column("_change_type").to_pylist()
    assert kinds.count(UPDATE_AFTER) > 0 and kinds.count(DELETE) > 0
    if image == "WAL":
        assert UPDATE_BEFORE not in kinds
    else:
        assert kinds.count(UPDATE_BEFORE) == kinds.count(UPDATE_AFTER)


# ---------------------------------------------------------------- idempotent writers

AGG_COLUMNS = [
    {"name": "k", "type": "BIGINT"},
    {"name": "total", "type": "BIGINT"},
    {"name": "hits", "type": "INT"},
    {"name": "tags", "type": "STRING"},
]
AGG_OPTIONS = {"table.merge-engine": "aggregation", "fields.total.agg": "sum", "fields.hits.agg": "sum",
               "fields.tags.agg": "listagg"}


def agg_rows(seed: int, n: int = 20) -> list[dict]:
    rng = random.Random(seed)
    return [{"k": rng.randrange(8), "total": rng.randrange(1, 1000), "hits": 1, "tags": f"s{seed}"} for _ in range(n)]


def live_buckets(ack: dict) -> list[tuple]:
    return sorted((b["bucket"], b["base_offset"], b["count"]) for b in ack["buckets"] if b["count"])


def test_given_idempotent_writer_when_a_batch_is_resent_should_be_duplicate_and_change_nothing(
        client, database, unique_name):
    table = unique_name("idem")
    model = new_table(client, database, table, columns=AGG_COLUMNS, key=["k"], options=AGG_OPTIONS)
    schema = arrow_schema(AGG_COLUMNS)
    b0, b1, b2 = (record_batch(schema, agg_rows(s)) for s in (0, 1, 2))
    first = put(client, write_cmd("upsert", database, table, writer_id=7, sequence=0), [b0, b1])
    for ack, batch, seq in zip(first, (b0, b1), (0, 1)):
        check_pk_ack(ack, batch.num_rows, len(model.upsert(batch.to_pylist())))
        assert ack.get("sequence") == seq, ack

    # The connection "broke" after b1 was sent: resend from sequence 1.
    retry = put(client, write_cmd("upsert", database, table, writer_id=7, sequence=1), [b1, b2])
    assert retry[0].get("duplicate") is True, retry[0]
    assert retry[0].get("sequence") == 1 and live_buckets(retry[0]) == live_buckets(first[1]), (retry[0], first[1])
    check_pk_ack(retry[1], b2.num_rows, len(model.upsert(b2.to_pylist())))
    assert retry[1].get("sequence") == 2
    check_state(client, database, table, model)   # sums count b1 once

    # A delete is deduplicated the same way: its retry must not delete the key inserted since.
    keys = record_batch(arrow_schema(AGG_COLUMNS, ["k"]), [{"k": 3}])
    (d,) = put(client, write_cmd("delete", database, table, writer_id=7, sequence=3), [keys])
    check_pk_ack(d, 1, len(model.delete(keys.to_pylist())))
    back = record_batch(schema, [{"k": 3, "total": 5, "hits": 1, "tags": "back"}])
    (u,) = put(client, write_cmd("upsert", database, table, writer_id=7, sequence=4), [back])
    check_pk_ack(u, 1, len(model.upsert(back.to_pylist())))
    (again,) = put(client, write_cmd("delete", database, table, writer_id=7, sequence=3), [keys])
    assert again.get("duplicate") is True and live_buckets(again) == live_buckets(d), (again, d)

    # A sequence gap is refused and writes nothing.
    with raises_grpc("FAILED_PRECONDITION", "sequence"):
        put(client, write_cmd("upsert", database, table, writer_id=7, sequence=9), [b0])
    check_state(client, database, table, model)


def test_given_one_stream_with_many_batches_when_acks_read_at_the_end_should_ack_each_in_order(
        client, database, unique_name):
    table = unique_name("pipelined")
    model = new_table(client, database, table, columns=AGG_COLUMNS, key=["k"], options=AGG_OPTIONS)
    schema = arrow_schema(AGG_COLUMNS)
    batches = [record_batch(schema, agg_rows(s, 50)) for s in range(10, 20)]
    expected = [len(model.upsert(b.to_pylist())) for b in batches]
    writer, reader = client.do_put(write_cmd("upsert", database, table, writer_id=99, sequence=100), schema,
                                   options=call_options())
    try:
        for b in batches:
            writer.write_batch(b)
        writer.done_writing()
        acks = [decode_ack(reader.read()) for _ in batches]
        assert reader.read() is None
    finally:
        writer.close()
    for i, (ack, b, n) in enumerate(zip(acks, batches, expected)):
        check_pk_ack(ack, b.num_rows, n, BUCKETS)
        assert ack.get("sequence") == 100 + i
    check_state(client, database, table, model)
