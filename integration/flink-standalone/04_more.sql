-- Step 4, while the job of step 3 runs: more orders, a correction of one key's page count
-- (a partial update that must keep its exposure count) and a row of a new day, whose partition
-- the write creates.
SET 'table.dml-sync' = 'true';
USE shop;

INSERT INTO orders VALUES
  (1004, 3, 7.25, 'store'),
  (1005, 3, 7.75, 'store');

-- Flink 2.3 refuses a streaming INSERT into a primary-key table from a query without a unique
-- key (VALUES here) unless ON CONFLICT says what two rows of one key mean
-- ('table.exec.sink.require-on-conflict'); DO DEDUPLICATE: the last one wins, an upsert.
INSERT INTO shop_stat_wide (shop_id, stat_date, stat_hour, page_cnt) VALUES
  (1, '2026-12-02', '01', 999),
  (2, '2026-12-03', '01', 7)
ON CONFLICT DO DEDUPLICATE;
