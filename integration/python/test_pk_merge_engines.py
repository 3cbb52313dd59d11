"""The merge engines of primary-key tables end to end with plain pyarrow.flight: first_row
(dedup: the changelog holds only +I), versioned (out-of-order versions), aggregation (every
function, full and partial writes, deletes), and roaring-bitmap UV tables (rbm32 checked with
pyroaring, rbm64 in the portable 64-bit format). Expectations come from pk_model.PkModel."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from pyroaring import BitMap, BitMap64

from flight_helpers import (arrow_schema, changelog, check_pk_ack, count_of, create_pk_table, put,
                            record_batch, snapshot, write_cmd)
from pk_model import (DELETE, INSERT, UPDATE_AFTER, UPDATE_BEFORE, PkModel, assert_changelog_matches,
                      assert_snapshot_matches, changelog_records)

BUCKETS = 3


def make(client, database, name, columns, key, options, **extra) -> PkModel:
    info = create_pk_table(client, database, name, columns, key, bucket_num=extra.pop("bucket_num", BUCKETS),
                           options=options, **extra)
    for option, value in options.items():
        assert info["options"].get(option) == value, (option, info["options"])
    return PkModel(columns, key, options)


def write(client, database, table, model: PkModel, columns, rows, kind="upsert", targets=None, bucket_num=BUCKETS):
    """Writes one batch and checks its ack against the model's change records."""
    if kind == "delete":
        changes = model.delete(rows)
        schema = arrow_schema(columns, model.key)
    else:
        changes = model.upsert(rows, targets)
        schema = arrow_schema(columns, None if targets is None else model.key + targets)
    extra = {"target_columns": targets} if targets is not None else {}
    batch = record_batch(schema, [model.encode(r) for r in rows])
    (ack,) = put(client, write_cmd(kind, database, table, **extra), [batch])
    check_pk_ack(ack, len(rows), len(changes), bucket_num)
    return changes


def check_all(client, database, table, model, bucket_num=BUCKETS):
    assert_snapshot_matches(model, snapshot(client, database, table), bucket_num)
    assert_changelog_matches(model, changelog(client, database, table))
    assert count_of(client, database, table, "rows") == len(model.state)
    assert count_of(client, database, table, "log") == len(model.log)


# ---------------------------------------------------------------- first_row

FIRST_COLUMNS = [{"name": "id", "type": "BIGINT"}, {"name": "v", "type": "STRING"}, {"name": "n", "type": "INT"}]


def test_given_first_row_table_should_keep_the_first_write_and_emit_only_inserts(client, database, unique_name):
    table = unique_name("first_row")
    model = make(client, database, table, FIRST_COLUMNS, ["id"], {"table.merge-engine": "first_row"})
    rng = random.Random(3)
    first_seen: dict[int, dict] = {}
    for round_ in range(5):
        rows = [{"id": rng.randrange(25), "v": f"r{round_}-{i}", "n": rng.randrange(100)} for i in range(30)]
        for r in rows:
            first_seen.setdefault(r["id"], r)
        write(client, database, table, model, FIRST_COLUMNS, rows)
        if round_ == 2:   # deletes change nothing on a first_row table
            assert write(client, database, table, model, FIRST_COLUMNS, [{"id": k} for k in range(0, 25, 2)], "delete") == []
    assert {k[0]: r for k, r in model.state.items()} == first_seen
    check_all(client, database, table, model)
    kinds = set(changelog(client, database, table).column("_change_type").to_pylist())
    assert kinds == {INSERT}, kinds


# ---------------------------------------------------------------- versioned

@pytest.mark.parametrize("ver_type", ["BIGINT", "TIMESTAMP(3)"])
def test_given_versioned_table_with_out_of_order_versions_should_keep_the_highest(client, database, unique_name, ver_type):
    table = unique_name("versioned")
    columns = [{"name": "id", "type": "BIGINT"}, {"name": "ver", "type": ver_type}, {"name": "payload", "type": "STRING"}]
    options = {"table.merge-engine": "versioned", "table.merge-engine.versioned.ver-column": "ver"}
    model = make(client, database, table, columns, ["id"], options)
    base = dt.datetime(2024, 6, 1, 12, 0, 0)

    def version(v: int):
        return v if ver_type == "BIGINT" else base + dt.timedelta(seconds=v)

    rng = random.Random(17)
    events = []
    for k in range(12):
        versions = list(range(1, 7)) + [rng.randrange(1, 7) for _ in range(3)]   # some ties
        rng.shuffle(versions)
        events += [{"id": k, "ver": version(v), "payload": f"k{k}v{v}#{i}"} for i, v in enumerate(versions)]
    rng.shuffle(events)
    for start in range(0, len(events), 18):
        write(client, database, table, model, columns, events[start:start + 18])

    # Highest version wins; among equal versions, the one written last.
    for k in range(12):
        mine = [e for e in events if e["id"] == k]
        top = max(e["ver"] for e in mine)
        assert model.state[(k,)] == [e for e in mine if e["ver"] == top][-1]
    check_all(client, database, table, model)

    # A delete removes the row; an older version then comes back as a new row.
    write(client, database, table, model, columns, [{"id": 0}, {"id": 1}], "delete")
    write(client, database, table, model, columns, [{"id": 0, "ver": version(1), "payload": "old again"},
                                                    {"id": 2, "ver": version(0), "payload": "too old"}])
    assert model.state[(0,)]["payload"] == "old again" and (1,) not in model.state
    check_all(client, database, table, model)


# ---------------------------------------------------------------- aggregation

AGG_COLUMNS = [
    {"name": "k", "type": "BIGINT"},
    {"name": "total", "type": "BIGINT"},
    {"name": "prod", "type": "BIGINT"},
    {"name": "hi", "type": "DOUBLE"},
    {"name": "lo", "type": "INT"},
    {"name": "lo_s", "type": "STRING"},
    {"name": "latest_day", "type": "DATE"},
    {"name": "names", "type": "STRING"},
    {"name": "tags", "type": "STRING"},
    {"name": "any_flag", "type": "BOOLEAN"},
    {"name": "all_flag", "type": "BOOLEAN"},
    {"name": "last_s", "type": "STRING"},
    {"name": "last_nn", "type": "STRING"},
    {"name": "dflt", "type": "STRING"},
    {"name": "first_s", "type": "STRING"},
    {"name": "first_nn", "type": "BIGINT"},
]
AGG_OPTIONS = {
    "table.merge-engine": "aggregation",
    "fields.total.agg": "sum", "fields.prod.agg": "product", "fields.hi.agg": "max", "fields.lo.agg": "min",
    "fields.lo_s.agg": "min", "fields.latest_day.agg": "max",
    "fields.names.agg": "listagg", "fields.names.listagg.delimiter": "|", "fields.tags.agg": "string_agg",
    "fields.any_flag.agg": "bool_or", "fields.all_flag.agg": "bool_and",
    "fields.last_s.agg": "last_value", "fields.last_nn.agg": "last_value_ignore_nulls",
    "fields.first_s.agg": "first_value", "fields.first_nn.agg": "first_value_ignore_nulls",
    # dflt has no function: last_value_ignore_nulls
}


def agg_row(rng: random.Random, k: int, i: int) -> dict:
    def maybe(v):
        return None if rng.random() < 0.25 else v
    return {
        "k": k, "total": maybe(rng.randrange(-100, 1000)), "prod": maybe(rng.choice([1, 2, 3, -1])),
        "hi": maybe(rng.randrange(-400, 400) / 4), "lo": maybe(rng.randrange(-1000, 1000)),
        "lo_s": maybe(rng.choice(["pear", "apple", "fig", "Zebra", "äpfel"])),
        "latest_day": maybe(dt.date(2024, 1, 1) + dt.timedelta(days=rng.randrange(400))),
        "names": maybe(f"n{i}"), "tags": maybe(rng.choice(["a", "b"])),
        "any_flag": maybe(rng.random() < 0.2), "all_flag": maybe(rng.random() < 0.8),
        "last_s": maybe(f"l{i}"), "last_nn": maybe(f"m{i}"), "dflt": maybe(f"d{i}"),
        "first_s": maybe(f"f{i}"), "first_nn": maybe(i),
    }


def test_given_aggregation_table_should_fold_every_function(client, database, unique_name):
    table = unique_name("agg")
    model = make(client, database, table, AGG_COLUMNS, ["k"], AGG_OPTIONS)
    rng = random.Random(23)
    i = 0
    for round_ in range(6):
        rows = []
        for _ in range(24):
            rows.append(agg_row(rng, rng.randrange(10), i))
            i += 1
        write(client, database, table, model, AGG_COLUMNS, rows)
        if round_ == 2:   # a partial write folds only its target columns
            partial = [{"k": k, "total": 1_000 + k, "names": f"p{k}"} for k in range(0, 12, 2)]
            write(client, database, table, model, AGG_COLUMNS, partial, targets=["total", "names"])
        if round_ == 3:   # a deleted key starts over
            write(client, database, table, model, AGG_COLUMNS, [{"k": 1}, {"k": 5}], "delete")
    # The model and the data really exercise the functions (not all nulls, not all equal).
    folded = model.state[(3,)]
    assert folded["names"] and "|" in folded["names"] and folded["total"] is not None, folded
    check_all(client, database, table, model)
    kinds = changelog(client, database, table).column("_change_type").to_pylist()
    assert {INSERT, UPDATE_BEFORE, UPDATE_AFTER, DELETE} <= set(kinds)


def test_given_aggregation_write_that_changes_nothing_should_emit_nothing(client, database, unique_name):
    # A write that leaves the folded row unchanged (max of a lower value) emits nothing;
    # one that changes it emits -U/+U even when the write equals the previous write.
    table = unique_name("agg_noop")
    columns = [{"name": "k", "type": "BIGINT"}, {"name": "hi", "type": "BIGINT"}, {"name": "n", "type": "BIGINT"}]
    options = {"table.merge-engine": "aggregation", "fields.hi.agg": "max", "fields.n.agg": "sum"}
    model = make(client, database, table, columns, ["k"], options, bucket_num=1)
    write(client, database, table, model, columns, [{"k": 1, "hi": 10, "n": 1}], bucket_num=1)
    assert write(client, database, table, model, columns, [{"k": 1, "hi": 5}], targets=["hi"], bucket_num=1) == []
    same = write(client, database, table, model, columns, [{"k": 1, "hi": 3, "n": 1}], bucket_num=1)
    assert [c for c, _ in same] == [UPDATE_BEFORE, UPDATE_AFTER] and same[1][1] == {"k": 1, "hi": 10, "n": 2}
    check_all(client, database, table, model, bucket_num=1)


# ---------------------------------------------------------------- roaring bitmaps: UV counting

UV_COLUMNS = [
    {"name": "ds", "type": "STRING"},
    {"name": "hh", "type": "STRING"},
    {"name": "mm", "type": "STRING"},
    {"name": "shard_id", "type": "INT"},
    {"name": "uv_bitmap", "type": "BYTES"},
]
UV_KEY = ["ds", "hh", "mm", "shard_id"]
SHARDS = 8   # users are sharded by dense id % SHARDS; the bitmap holds id // SHARDS


def test_given_rbm32_uv_table_when_bitmaps_of_each_batch_are_merged_should_count_unique_users(
        client, database, unique_name):
    table = unique_name("ads_uv_agg")
    model = make(client, database, table, UV_COLUMNS, UV_KEY,
                 {"table.merge-engine": "aggregation", "fields.uv_bitmap.agg": "rbm32"},
                 bucket_key=["shard_id"], bucket_num=4)
    rng = random.Random(41)
    users_per_minute: dict[str, set] = {}
    for checkpoint in range(6):
        # The events of one checkpoint, pre-aggregated per (minute, shard) into one bitmap.
        events = [(f"{rng.randrange(3):02d}", rng.randrange(200_000)) for _ in range(3_000)]
        if checkpoint == 4:   # a burst of consecutive new ids: run containers in pyroaring's bitmaps
            events += [("01", uid) for uid in range(500_000, 520_000)]
        partials: dict[tuple, set] = {}
        for mm, uid in events:
            users_per_minute.setdefault(mm, set()).add(uid)
            partials.setdefault(("20250101", "10", mm, uid % SHARDS), set()).add(uid // SHARDS)
        rows = [dict(zip(UV_KEY, k), uv_bitmap=frozenset(ids)) for k, ids in sorted(partials.items())]
        write(client, database, table, model, UV_COLUMNS, rows, bucket_num=4)

    snap = snapshot(client, database, table)
    assert_snapshot_matches(model, snap, 4)
    per_minute: dict[str, int] = {}
    for row in snap.rows:
        bitmap = BitMap.deserialize(row["uv_bitmap"])
        per_minute[row["mm"]] = per_minute.get(row["mm"], 0) + len(bitmap)
    assert per_minute == {mm: len(users) for mm, users in users_per_minute.items()}
    assert_changelog_matches(model, changelog(client, database, table))


def test_given_rbm64_table_should_union_64_bit_ids_in_the_portable_format(client, database, unique_name):
    table = unique_name("uv64")
    columns = [{"name": "day", "type": "STRING"}, {"name": "users", "type": "BYTES"}]
    model = make(client, database, table, columns, ["day"],
                 {"table.merge-engine": "aggregation", "fields.users.agg": "rbm64"}, bucket_num=2)
    rng = random.Random(64)
    expected: dict[str, set] = {}
    for _ in range(4):
        rows = []
        for day in ("mon", "tue", "wed"):
            ids = {rng.randrange(1 << 62) for _ in range(50)} | {(h << 32) + rng.randrange(100) for h in range(3)}
            ids.add((1 << 64) - 1)
            expected.setdefault(day, set()).update(ids)
            rows.append({"day": day, "users": frozenset(ids)})
        write(client, database, table, model, columns, rows, bucket_num=2)
    snap = snapshot(client, database, table)
    assert {r["day"]: set(BitMap64.deserialize(r["users"])) for r in snap.rows} == expected
    assert_snapshot_matches(model, snap, 2)
    records = changelog_records(model, changelog(client, database, table))
    assert [kind for _, kind, _ in records].count(INSERT) == 3
