-- Step 2, batch mode: bounded reads of what step 1 wrote, into new Strom tables.
SET 'execution.runtime-mode' = 'batch';
SET 'table.dml-sync' = 'true';
USE shop;

-- Sales per shop from the log table (the scan reads only shop_id and amount: projection
-- push-down).
CREATE TABLE shop_sales (
  shop_id    BIGINT,
  order_cnt  BIGINT,
  amount_sum DECIMAL(20, 2),
  PRIMARY KEY (shop_id) NOT ENFORCED
) WITH ('bucket.num' = '1');

INSERT INTO shop_sales
SELECT shop_id, COUNT(*), CAST(SUM(amount) AS DECIMAL(20, 2))
FROM orders
GROUP BY shop_id;

-- One day of the wide table: a snapshot read of one partition (partition push-down), three of
-- its columns.
CREATE TABLE stat_day1 (
  shop_id   BIGINT,
  stat_hour STRING,
  exp_cnt   BIGINT,
  page_cnt  BIGINT,
  PRIMARY KEY (shop_id, stat_hour) NOT ENFORCED
) WITH ('bucket.num' = '1');

INSERT INTO stat_day1
SELECT shop_id, stat_hour, exp_cnt, page_cnt
FROM shop_stat_wide
WHERE stat_date = '2026-12-01';

-- Queries that print their result (run.sh checks the order count in this output too).
SET 'sql-client.execution.result-mode' = 'tableau';
SELECT COUNT(*) AS order_count FROM orders;
SELECT shop_id, stat_hour, exp_cnt, page_cnt
FROM shop_stat_wide
WHERE stat_date = '2026-12-02' AND shop_id = 3
ORDER BY stat_hour;
