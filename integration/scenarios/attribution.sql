-- Conversion-rate attribution (the seeds' scenario 1): page visits joined with orders on the
-- user and the day, as a delta join: each side's changes are looked up in the other table
-- (prefix lookups on the bucket key user_id within the day's partition) instead of living in
-- Flink's join state. Statements are separated by ';' at the end of a line; `-- step: name`
-- lines mark what the test runs when.

-- step: tables
CREATE TABLE order_ri (
  order_id STRING,
  user_id STRING,
  order_time STRING,
  pay_amt STRING,
  ds STRING,
  PRIMARY KEY (user_id, ds, order_id) NOT ENFORCED
) PARTITIONED BY (ds) WITH (
  'bucket.key' = 'user_id',
  'bucket.num' = '4',
  'table.delete.behavior' = 'IGNORE'
);
CREATE TABLE log_page_ri (
  user_id STRING,
  first_page_time STRING,
  pv BIGINT,
  ds STRING,
  PRIMARY KEY (user_id, ds) NOT ENFORCED
) PARTITIONED BY (ds) WITH (
  'bucket.key' = 'user_id',
  'bucket.num' = '4',
  'table.delete.behavior' = 'IGNORE'
);
-- The join's upsert key is both sides' keys, so both sides' key columns are kept.
CREATE TABLE log_page_ord_detail_ri (
  user_id STRING,
  ds STRING,
  o_user_id STRING,
  o_ds STRING,
  order_id STRING,
  first_page_time STRING,
  order_time STRING,
  pv BIGINT,
  pay_amt STRING,
  is_matched STRING,
  PRIMARY KEY (user_id, ds, o_user_id, o_ds, order_id) NOT ENFORCED
) WITH ('bucket.num' = '4');
-- The reference result of a regular join: the same table.
CREATE TABLE log_page_ord_detail_regular LIKE log_page_ord_detail_ri;

-- step: load (batch): 100 000 orders of 20 000 users over 2 days, one visit row per user and day
CREATE TEMPORARY TABLE seq_orders (i BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '100000',
  'rows-per-second' = '1000000000', 'fields.i.kind' = 'sequence', 'fields.i.start' = '0', 'fields.i.end' = '99999');
CREATE TEMPORARY TABLE seq_visits (i BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '40000',
  'rows-per-second' = '1000000000', 'fields.i.kind' = 'sequence', 'fields.i.start' = '0', 'fields.i.end' = '39999');
INSERT INTO order_ri
SELECT CONCAT('o', CAST(i AS STRING)), CONCAT('u', CAST(MOD(i, 20000) AS STRING)),
       CONCAT('12:', LPAD(CAST(MOD(i, 60) AS STRING), 2, '0')), CAST(MOD(i, 997) AS STRING),
       CONCAT('2026-12-0', CAST(1 + MOD(i / 20000, 2) AS STRING))
FROM seq_orders;
INSERT INTO log_page_ri
SELECT CONCAT('u', CAST(MOD(i, 20000) AS STRING)), CONCAT('12:', LPAD(CAST(MOD(i, 37) AS STRING), 2, '0')),
       MOD(i, 11) + 1, CONCAT('2026-12-0', CAST(1 + i / 20000 AS STRING))
FROM seq_visits;

-- step: regular (batch): the same join as a regular join, the reference
INSERT INTO log_page_ord_detail_regular
SELECT l.user_id, l.ds, o.user_id, o.ds, o.order_id, l.first_page_time, o.order_time, l.pv, o.pay_amt,
       CASE WHEN o.order_time >= l.first_page_time THEN '1' ELSE '0' END
FROM log_page_ri AS l JOIN order_ri AS o ON l.user_id = o.user_id AND l.ds = o.ds;

-- step: delta (streaming, table.optimizer.delta-join.strategy = FORCE)
INSERT INTO log_page_ord_detail_ri
SELECT l.user_id, l.ds, o.user_id, o.ds, o.order_id, l.first_page_time, o.order_time, l.pv, o.pay_amt,
       CASE WHEN o.order_time >= l.first_page_time THEN '1' ELSE '0' END
FROM log_page_ri AS l JOIN order_ri AS o ON l.user_id = o.user_id AND l.ds = o.ds;
