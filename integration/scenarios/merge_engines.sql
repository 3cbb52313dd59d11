-- Sorting jobs replaced by merge engines (the seeds' transaction attribution): page-step events
-- arrive out of order and only the latest by event_time counts (a `versioned` table); deals
-- are reported several times and only the first report counts (a `first_row` table). No Flink
-- job sorts or deduplicates: the node merges on write, and downstream jobs read the two tables
-- as changelogs — a delta join of both (the seeds' join) and aggregations that are only right
-- if every update retracts the row it replaces.

-- step: tables
CREATE TABLE dpv_versioned_merge (
  pk STRING,
  user_name STRING,
  item_id STRING,
  step_no STRING,
  event_time BIGINT,
  dt STRING,
  PRIMARY KEY (user_name, item_id, step_no, dt) NOT ENFORCED
) PARTITIONED BY (dt) WITH (
  'bucket.num' = '4',
  'bucket.key' = 'user_name,item_id',
  'table.merge-engine' = 'versioned',                  -- keep the row with the largest event_time
  'table.merge-engine.versioned.ver-column' = 'event_time',
  'table.delete.behavior' = 'IGNORE',                  -- no deletes: a delta join may read it
  'table.log.arrow.compression.type' = 'ZSTD'
);
CREATE TABLE deal_kv (
  pk STRING,
  user_name STRING,
  item_id STRING,
  event_time BIGINT,
  dt STRING,
  PRIMARY KEY (user_name, item_id, pk, dt) NOT ENFORCED
) PARTITIONED BY (dt) WITH (
  'bucket.num' = '4',
  'bucket.key' = 'user_name,item_id',
  'table.merge-engine' = 'first_row',                  -- keep the first report of a deal
  'table.log.arrow.compression.type' = 'ZSTD'
);
-- The seeds' join of both tables, keyed by both sides' keys (the join's upsert key).
CREATE TABLE dpv_deal_ri (
  user_name STRING,
  item_id STRING,
  step_no STRING,
  dt STRING,
  deal_user_name STRING,
  deal_item_id STRING,
  deal_pk STRING,
  deal_dt STRING,
  dpv_pk STRING,
  dpv_event_time BIGINT,
  deal_event_time BIGINT,
  PRIMARY KEY (user_name, item_id, step_no, dt, deal_user_name, deal_item_id, deal_pk, deal_dt) NOT ENFORCED
) WITH ('bucket.num' = '4');
-- Per day and step: how many (user, item) reached it and the sum of their latest event times.
CREATE TABLE step_funnel (
  dt STRING,
  step_no STRING,
  users_items BIGINT,
  latest_time_sum BIGINT,
  PRIMARY KEY (dt, step_no) NOT ENFORCED
) WITH ('bucket.num' = '2');
-- Per day: deals counted once each, and the sum of their first report times.
CREATE TABLE deal_daily (
  dt STRING,
  deals BIGINT,
  first_time_sum BIGINT,
  PRIMARY KEY (dt) NOT ENFORCED
) WITH ('bucket.num' = '2');

-- step: join (streaming, table.optimizer.delta-join.strategy = FORCE): the seeds' join
INSERT INTO dpv_deal_ri
SELECT t1.user_name, t1.item_id, t1.step_no, t1.dt, t2.user_name, t2.item_id, t2.pk, t2.dt,
       t1.pk, t1.event_time, t2.event_time
FROM dpv_versioned_merge AS t1
JOIN deal_kv AS t2
  ON t1.dt = t2.dt AND t1.user_name = t2.user_name AND t1.item_id = t2.item_id;

-- step: funnel (streaming): reads the versioned table's changelog (-U retracts the old version)
INSERT INTO step_funnel
SELECT dt, step_no, COUNT(*), SUM(event_time) FROM dpv_versioned_merge GROUP BY dt, step_no;

-- step: daily (streaming): reads the first_row table's changelog (inserts only)
INSERT INTO deal_daily
SELECT dt, COUNT(*), SUM(event_time) FROM deal_kv GROUP BY dt;

-- step: steps (streaming): 100 000 step events = 20 000 keys (500 users x 5 items x 4 steps x
-- 2 days), 5 versions each, arriving in an order unrelated to their event_time
-- Raw events have no upsert key, which Flink 2.3 refuses for a primary-key sink unless told
-- otherwise; ON CONFLICT would make Flink keep state, the very thing the merge engine
-- replaces, so the check is turned off: the node decides which row of a key stays.
SET 'table.exec.sink.require-on-conflict' = 'false';
CREATE TEMPORARY TABLE step_events (i BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '100000',
  'rows-per-second' = '50000', 'fields.i.kind' = 'sequence', 'fields.i.start' = '0', 'fields.i.end' = '99999');
INSERT INTO dpv_versioned_merge
SELECT CONCAT('p', CAST(i AS STRING)), CONCAT('u', CAST(MOD(i, 500) AS STRING)),
       CONCAT('item', CAST(MOD(i / 500, 5) AS STRING)), CAST(MOD(i / 2500, 4) AS STRING),
       1000000 + MOD(i / 20000 * 3 + MOD(i, 5), 5) * 1000 + MOD(i, 500),
       CONCAT('2026120', CAST(1 + MOD(i / 10000, 2) AS STRING))
FROM step_events;

-- step: deals (streaming): 100 000 reports of 25 000 deals (each reported 4 times), 5 deals per
-- (user, item, day)
SET 'table.exec.sink.require-on-conflict' = 'false';
CREATE TEMPORARY TABLE deal_reports (j BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '100000',
  'rows-per-second' = '50000', 'fields.j.kind' = 'sequence', 'fields.j.start' = '0', 'fields.j.end' = '99999');
INSERT INTO deal_kv
SELECT CONCAT('d', CAST(MOD(j, 25000) AS STRING)), CONCAT('u', CAST(MOD(j, 500) AS STRING)),
       CONCAT('item', CAST(MOD(j / 500, 5) AS STRING)), j,
       CONCAT('2026120', CAST(1 + MOD(j / 2500, 2) AS STRING))
FROM deal_reports;
