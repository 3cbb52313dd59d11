-- The real-time product-store wide table (the seeds' scenario 2): two independent streaming
-- jobs each own some columns of one primary-key table and write them as partial updates
-- (INSERT INTO ... (column list)); the node merges them into one row per key.

-- step: tables
CREATE TABLE shop_stat_wide (
  shop_id BIGINT NOT NULL,
  stat_date STRING NOT NULL,
  stat_hour STRING NOT NULL,
  exp_cnt BIGINT,   -- exposure count
  page_cnt BIGINT,  -- page view count
  PRIMARY KEY (shop_id, stat_date, stat_hour) NOT ENFORCED
) WITH ('bucket.num' = '4', 'bucket.key' = 'shop_id');
CREATE TABLE exposure_log (shop_id BIGINT, stat_date STRING, stat_hour STRING, exp_cnt BIGINT) WITH ('bucket.num' = '2');
CREATE TABLE page_log (shop_id BIGINT, stat_date STRING, stat_hour STRING, page_cnt BIGINT) WITH ('bucket.num' = '2');

-- step: load (batch): 100 000 exposure events over 500 shops, 100 000 page views over 700 shops
CREATE TEMPORARY TABLE seq_a (i BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '100000',
  'rows-per-second' = '1000000000', 'fields.i.kind' = 'sequence', 'fields.i.start' = '0', 'fields.i.end' = '99999');
INSERT INTO exposure_log
SELECT MOD(i, 500), '2026-12-06', LPAD(CAST(MOD(i / 500, 24) AS STRING), 2, '0'), MOD(i, 7) + 1 FROM seq_a;
INSERT INTO page_log
SELECT MOD(i, 700), '2026-12-06', LPAD(CAST(MOD(i / 700, 24) AS STRING), 2, '0'), MOD(i, 5) + 1 FROM seq_a;

-- step: exposure (streaming): the job that owns exp_cnt
INSERT INTO shop_stat_wide (shop_id, stat_date, stat_hour, exp_cnt)
SELECT shop_id, stat_date, stat_hour, SUM(exp_cnt) FROM exposure_log GROUP BY shop_id, stat_date, stat_hour;

-- step: pages (streaming): the job that owns page_cnt
INSERT INTO shop_stat_wide (shop_id, stat_date, stat_hour, page_cnt)
SELECT shop_id, stat_date, stat_hour, SUM(page_cnt) FROM page_log GROUP BY shop_id, stat_date, stat_hour;
