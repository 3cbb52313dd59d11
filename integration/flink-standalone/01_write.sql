-- Step 1, streaming mode (Flink's default): the tables, and bounded jobs that write them.
-- `table.dml-sync` makes every INSERT wait for its job to finish before the next statement.
SET 'table.dml-sync' = 'true';

CREATE DATABASE shop COMMENT 'written by integration/flink-standalone';
USE shop;

-- A log table (no primary key): every row is an append.
CREATE TABLE orders (
  order_id BIGINT,
  shop_id  BIGINT,
  amount   DECIMAL(10, 2),
  channel  STRING
) COMMENT 'orders, appended' WITH ('bucket.num' = '2');

-- A partitioned primary-key table that two jobs fill column by column (a partial update each),
-- as in the seeds' shop_stat_wide.
CREATE TABLE shop_stat_wide (
  shop_id   BIGINT,
  stat_date STRING,
  stat_hour STRING,
  exp_cnt   BIGINT COMMENT 'exposure count',
  page_cnt  BIGINT COMMENT 'page view count',
  PRIMARY KEY (shop_id, stat_date, stat_hour) NOT ENFORCED
) PARTITIONED BY (stat_date)
WITH ('bucket.num' = '2', 'bucket.key' = 'shop_id');

-- 1000 orders from a bounded datagen source; the values derive from the id so that check.py
-- knows every row.
CREATE TEMPORARY TABLE order_ids (id BIGINT) WITH (
  'connector' = 'datagen', 'number-of-rows' = '1000',
  'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '1000');

INSERT INTO orders
SELECT id,
       id % 7,
       CAST(CAST(id % 100 AS DECIMAL(10, 2)) + 0.25 AS DECIMAL(10, 2)),
       CASE WHEN id % 3 = 0 THEN 'app' ELSE 'web' END
FROM order_ids;

-- And three more from VALUES.
INSERT INTO orders VALUES
  (1001, 1, 19.99, 'store'),
  (1002, 2, 5.00, 'store'),
  (1003, 8, 120.50, 'store');

-- Two event streams (bounded here) aggregated per shop, day and hour.
CREATE TEMPORARY TABLE exposure_ids (id BIGINT) WITH (
  'connector' = 'datagen', 'number-of-rows' = '600',
  'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '600');
CREATE TEMPORARY VIEW exposure_log AS
SELECT id % 5 AS shop_id,
       CONCAT('2026-12-0', CAST(1 + id % 2 AS STRING)) AS stat_date,
       CONCAT('0', CAST(id % 3 AS STRING)) AS stat_hour,
       id % 10 AS exp_cnt
FROM exposure_ids;

CREATE TEMPORARY TABLE page_ids (id BIGINT) WITH (
  'connector' = 'datagen', 'number-of-rows' = '400',
  'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '400');
CREATE TEMPORARY VIEW page_log AS
SELECT 3 + id % 4 AS shop_id,
       CONCAT('2026-12-0', CAST(1 + id % 2 AS STRING)) AS stat_date,
       CONCAT('0', CAST(id % 3 AS STRING)) AS stat_hour
FROM page_ids;

-- Job 1 writes the exposure column only ...
INSERT INTO shop_stat_wide (shop_id, stat_date, stat_hour, exp_cnt)
SELECT shop_id, stat_date, stat_hour, SUM(exp_cnt)
FROM exposure_log
GROUP BY shop_id, stat_date, stat_hour;

-- ... job 2 the page-view column of the same keys (and of keys job 1 does not have): neither
-- overwrites the other's column.
INSERT INTO shop_stat_wide (shop_id, stat_date, stat_hour, page_cnt)
SELECT shop_id, stat_date, stat_hour, COUNT(*)
FROM page_log
GROUP BY shop_id, stat_date, stat_hour;
