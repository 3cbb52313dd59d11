"""The seeds' partitioned DDL, created over plain Flight actions with their options: the delta
join's `order_ri` / `log_page_ri` (auto-partitioned by `ds`, bucket key `user_id`), the
Taobao `dpv_versioned_merge` table (versioned merge engine, 1-day changelog TTL, pre-created and
retained partitions), the minute `order_dtm` and the `ads_uv_agg` rbm32 UV table. Rows land in their day partitions and the delta join's prefix lookup
(`user_id` within a day) works on them. (`log_page_ord_detail_ri` also sets
`table.datalake.*`, which this node answers with UNIMPLEMENTED until lake tiering lands.)"""

from __future__ import annotations

import datetime

import pyarrow as pa
from pyroaring import BitMap

from flight_helpers import action1, lookup, put, raises_grpc, write_cmd


def day(offset: int = 0) -> str:
    return (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=offset)).strftime("%Y%m%d")


def create_and_check_precreated(client, body) -> dict:
    before = day()
    info = action1(client, "create_table", body)
    after = day()
    # The current day and the next exist at once (num-precreate defaults to 2); the check runs
    # at creation, so only a midnight in between can shift them by one.
    expected = [[d, (datetime.datetime.strptime(d, "%Y%m%d") + datetime.timedelta(days=1)).strftime("%Y%m%d")]
                for d in {before, after}]
    assert info["partitions"] in expected, info["partitions"]
    return info


def test_given_the_delta_join_tables_when_created_should_precreate_days_and_serve_prefix_lookups(client, database):
    order_ri = create_and_check_precreated(client, {
        "database": database, "table": "order_ri",
        "columns": [{"name": "order_id", "type": "STRING"}, {"name": "user_id", "type": "STRING"},
                    {"name": "order_time", "type": "STRING"}, {"name": "pay_amt", "type": "STRING"},
                    {"name": "ds", "type": "STRING"}],
        "primary_key": ["user_id", "ds", "order_id"], "partition_keys": ["ds"],
        "options": {"bucket.key": "user_id", "bucket.num": "4", "table.auto-partition.enabled": "true",
                    "table.auto-partition.key": "ds"}})
    assert order_ri["options"]["table.auto-partition.time-unit"] == "DAY"
    assert order_ri["options"]["table.auto-partition.num-retention"] == "7"
    create_and_check_precreated(client, {
        "database": database, "table": "log_page_ri",
        "columns": [{"name": "user_id", "type": "STRING"}, {"name": "first_page_time", "type": "STRING"},
                    {"name": "pv", "type": "BIGINT"}, {"name": "ds", "type": "STRING"}],
        "primary_key": ["user_id", "ds"], "partition_keys": ["ds"],
        "options": {"bucket.key": "user_id", "bucket.num": "4", "table.auto-partition.enabled": "true",
                    "table.auto-partition.key": "ds"}})
    with raises_grpc("UNIMPLEMENTED", "table.datalake.enabled"):
        action1(client, "create_table", {
            "database": database, "table": "log_page_ord_detail_ri",
            "columns": [{"name": "user_id", "type": "STRING"}, {"name": "order_id", "type": "STRING"},
                        {"name": "ds", "type": "STRING"}],
            "primary_key": ["user_id", "order_id", "ds"], "partition_keys": ["ds"],
            "options": {"bucket.key": "user_id,order_id", "table.auto-partition.enabled": "true",
                        "table.auto-partition.key": "ds", "table.datalake.enabled": "true",
                        "table.datalake.freshness": "3min"}})

    today, yesterday = day(), day(-1)
    schema = pa.schema([("order_id", pa.string()), ("user_id", pa.string()), ("order_time", pa.string()),
                        ("pay_amt", pa.string()), ("ds", pa.string())])
    orders = [("o1", "u1", "10:00", "5.00", today), ("o2", "u1", "11:00", "7.50", today),
              ("o3", "u2", "09:00", "1.00", today), ("o0", "u1", "23:00", "2.00", yesterday)]
    [ack] = put(client, write_cmd("upsert", database, "order_ri"),
                [pa.RecordBatch.from_pylist([dict(zip(schema.names, o)) for o in orders], schema=schema)])
    assert {b["partition"] for b in ack["buckets"]} == {today, yesterday}, "yesterday's row creates its day"
    # The delta join looks up a visit's (user_id, ds) in order_ri: one seek per prefix.
    got = lookup(client, database, "order_ri", [["u1", today], ["u2", yesterday]], kind="prefix")
    assert sorted(got.column("order_id").to_pylist()) == ["o1", "o2"]


def test_given_the_versioned_dpv_table_when_created_should_keep_every_seed_option(client, database):
    info = create_and_check_precreated(client, {
        "database": database, "table": "dpv_versioned_merge",
        "columns": [{"name": "pk", "type": "VARCHAR"}, {"name": "user_name", "type": "VARCHAR"},
                    {"name": "item_id", "type": "VARCHAR"}, {"name": "step_no", "type": "VARCHAR"},
                    {"name": "event_time", "type": "BIGINT"}, {"name": "dt", "type": "VARCHAR"}],
        "primary_key": ["user_name", "item_id", "step_no", "dt"], "partition_keys": ["dt"],
        "options": {"bucket.num": "8", "bucket.key": "user_name,item_id",
                    "table.auto-partition.enabled": "true", "table.auto-partition.time-unit": "day",
                    "table.merge-engine": "versioned", "table.merge-engine.versioned.ver-column": "event_time",
                    "table.auto-partition.num-precreate": "2", "table.auto-partition.num-retention": "2",
                    "table.log.ttl": "1d", "table.log.arrow.compression.type": "ZSTD"}})
    assert info["options"]["table.auto-partition.key"] == "dt"
    assert info["bucket_key"] == ["user_name", "item_id"]
    assert action1(client, "alter_table", {"database": database, "table": "dpv_versioned_merge",
                                           "set_options": {"table.auto-partition.num-retention": "3"}}
                   )["options"]["table.auto-partition.num-retention"] == "3", "retention changes online"
    with raises_grpc("INVALID_ARGUMENT", "table.auto-partition.time-unit"):
        action1(client, "alter_table", {"database": database, "table": "dpv_versioned_merge",
                                        "set_options": {"table.auto-partition.time-unit": "HOUR"}})
    for options, culprit in [
        ({"table.auto-partition.enabled": "true", "table.auto-partition.time-unit": "WEEK"}, "WEEK"),
        ({"table.auto-partition.enabled": "true", "table.auto-partition.time-zone": "Mars/Base"}, "Mars/Base"),
        ({"table.auto-partition.num-precreate": "2"}, "table.auto-partition.enabled"),
    ]:
        with raises_grpc("INVALID_ARGUMENT", culprit):
            action1(client, "create_table", {
                "database": database, "table": "bad_auto",
                "columns": [{"name": "id", "type": "BIGINT"}, {"name": "dt", "type": "STRING"}],
                "partition_keys": ["dt"], "options": options})


def test_given_the_minute_order_and_uv_bitmap_tables_should_aggregate_within_day_partitions(client, database):
    order_dtm = action1(client, "create_table", {
        "database": database, "table": "order_dtm",
        "columns": [{"name": "ds", "type": "STRING"}, {"name": "mm", "type": "STRING"},
                    {"name": "order_source", "type": "STRING"}, {"name": "order_cnt", "type": "BIGINT"}],
        "primary_key": ["ds", "mm", "order_source"], "partition_keys": ["ds"],
        "options": {"bucket.key": "mm,order_source", "bucket.num": "4", "table.auto-partition.enabled": "true",
                    "table.auto-partition.time-unit": "day", "table.auto-partition.key": "ds",
                    "table.auto-partition.num-precreate": "0", "table.auto-partition.num-retention": "2",
                    "table.replication.factor": "1", "table.log.arrow.compression.type": "zstd"}})
    assert order_dtm["partitions"] == [], "num-precreate 0: partitions appear with their first rows"

    body = {
        "database": database, "table": "ads_uv_agg", "if_not_exists": True,
        "columns": [{"name": "ds", "type": "STRING"}, {"name": "hh", "type": "STRING"}, {"name": "mm", "type": "STRING"},
                    {"name": "shard_id", "type": "INT"}, {"name": "uv_bitmap", "type": "BYTES"}],
        "primary_key": ["ds", "hh", "mm", "shard_id"], "partition_keys": ["ds"],
        "options": {"bucket.key": "shard_id", "bucket.num": "4", "table.merge-engine": "aggregation",
                    "fields.uv_bitmap.agg": "rbm32", "table.auto-partition.enabled": "true",
                    "table.auto-partition.time-unit": "day", "table.auto-partition.key": "ds"}}
    action1(client, "create_table", body)
    action1(client, "create_table", body)  # IF NOT EXISTS: the second create is a no-op
    schema = pa.schema([("ds", pa.string()), ("hh", pa.string()), ("mm", pa.string()), ("shard_id", pa.int32()),
                        ("uv_bitmap", pa.binary())])
    today = day()
    users = [range(0, 100), range(50, 180), range(170, 200)]
    batches = [pa.RecordBatch.from_pylist([{"ds": today, "hh": "10", "mm": "05", "shard_id": 3,
                                            "uv_bitmap": BitMap(u).serialize()}], schema=schema) for u in users]
    put(client, write_cmd("upsert", database, "ads_uv_agg"), batches)
    got = lookup(client, database, "ads_uv_agg", [[today, "10", "05", 3]])
    assert len(BitMap.deserialize(got.column("uv_bitmap")[0].as_py())) == 200, "the union of the three minute bitmaps"
