-- Global real-time UV (the seeds' scenario 5): user ids are mapped to dense integers by a
-- table with an auto-increment column, filled by a lookup join that inserts the keys it misses
-- in the same round trip; per-minute bitmaps of those integers are merged by the node
-- (`rbm32` aggregation), so Flink only unions pre-merged bitmaps to count distinct users.
-- The seeds' tables also enable auto-partitioning by day; it is left out here because the
-- test data is for a fixed day, which retention would retire once that day is past.

-- step: tables
CREATE TABLE log_exp_ri (
  user_id BIGINT,
  ds STRING,
  hh STRING,
  mm STRING
) WITH ('bucket.num' = '2');
CREATE TABLE user_mapping_table (
  user_id BIGINT COMMENT 'Original User ID',
  uid_int64 BIGINT COMMENT 'Auto-incremented Globally Unique Integer ID',
  update_time TIMESTAMP(3) COMMENT 'Update Time',
  PRIMARY KEY (user_id) NOT ENFORCED
) WITH (
  'bucket.key' = 'user_id',
  'bucket.num' = '4',
  'auto-increment.fields' = 'uid_int64',
  'table.log.arrow.compression.type' = 'zstd'
);
CREATE TABLE ads_uv_agg (
  ds STRING COMMENT 'Date partition yyyyMMdd',
  hh STRING COMMENT 'Hour HH',
  mm STRING COMMENT 'Minute mm',
  shard_id INT COMMENT 'Shard ID',
  uv_bitmap BYTES COMMENT 'Minute-level user bitmap',
  PRIMARY KEY (ds, hh, mm, shard_id) NOT ENFORCED
) PARTITIONED BY (ds) WITH (
  'bucket.key' = 'shard_id',
  'bucket.num' = '4',
  'table.merge-engine' = 'aggregation',
  'fields.uv_bitmap.agg' = 'rbm32'
);

-- step: load (batch): 120 000 exposures of 30 000 users (sparse 64-bit ids) over one hour
CREATE TEMPORARY TABLE exposures (i BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '120000',
  'rows-per-second' = '1000000000', 'fields.i.kind' = 'sequence', 'fields.i.start' = '0', 'fields.i.end' = '119999');
INSERT INTO log_exp_ri
SELECT 900000000000 + MOD(i * 7919, 30000) * 1000003, '20261206', '12', LPAD(CAST(MOD(i / 2000, 60) AS STRING), 2, '0')
FROM exposures;

-- step: mapping (streaming): new users get their integer id from the lookup's insert.
-- The seeds write FOR SYSTEM_TIME AS OF PROCTIME(); Flink 2.3 refuses it ("Unsupported time
-- travel expression"), so the exposures get a processing-time column in a view; the seeds' hint
-- REPLICATED_SHUFFLE_HASH is a vendor hint Apache Flink does not know, so it is left out.
CREATE TEMPORARY VIEW log_exp_ri_pt AS SELECT *, PROCTIME() AS proc_time FROM log_exp_ri;
INSERT INTO user_mapping_table (user_id)
SELECT t1.user_id
FROM log_exp_ri_pt t1
LEFT JOIN user_mapping_table
  /*+ OPTIONS(
    'lookup.insert-if-not-exists' = 'true',
    'lookup.cache' = 'PARTIAL',
    'lookup.partial-cache.max-rows' = '500000',
    'lookup.partial-cache.expire-after-write' = '1h',
    'lookup.partial-cache.cache-missing-key' = 'false'
  ) */
  FOR SYSTEM_TIME AS OF t1.proc_time AS t2
  ON t1.user_id = t2.user_id
GROUP BY t1.user_id;

-- step: uv (streaming): per-minute bitmaps of the mapped ids, 8 shards; the node unions every
-- update of a (minute, shard) bitmap into the stored one. Mini-batches (as advised for
-- BITMAP aggregates) fold many exposures into one update of a bitmap.
SET 'table.exec.mini-batch.enabled' = 'true';
SET 'table.exec.mini-batch.allow-latency' = '1 s';
SET 'table.exec.mini-batch.size' = '5000';
CREATE TEMPORARY VIEW log_exp_ri_pt AS SELECT *, PROCTIME() AS proc_time FROM log_exp_ri;
INSERT INTO ads_uv_agg
SELECT
  t1.ds,
  t1.hh,
  t1.mm,
  CAST(t2.uid_int64 % 8 AS INT) AS shard_id,
  BITMAP_TO_BYTES(BITMAP_BUILD_AGG(CAST((t2.uid_int64 / 8) AS INT))) AS uv_bitmap
FROM log_exp_ri_pt t1
LEFT JOIN user_mapping_table
  /*+ OPTIONS('lookup.cache' = 'PARTIAL', 'lookup.partial-cache.max-rows' = '500000') */
  FOR SYSTEM_TIME AS OF t1.proc_time AS t2
  ON t1.user_id = t2.user_id
GROUP BY t1.ds, t1.hh, t1.mm, CAST(t2.uid_int64 % 8 AS INT);

-- step: count (batch): the global merge - exact distinct users of the day and of each minute
SELECT ds, SUM(users) AS uv FROM (
  SELECT ds, shard_id, BITMAP_CARDINALITY(BITMAP_OR_AGG(BITMAP_FROM_BYTES(uv_bitmap))) AS users
  FROM ads_uv_agg GROUP BY ds, shard_id
) GROUP BY ds;
SELECT mm, SUM(BITMAP_CARDINALITY(BITMAP_FROM_BYTES(uv_bitmap))) AS uv FROM ads_uv_agg GROUP BY mm;
