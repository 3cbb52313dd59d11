-- Step 3, streaming mode: one long-running job that keeps two mirrors up to date. It is
-- submitted and left running (no dml-sync); run.sh checks the mirrors, runs 04_more.sql,
-- checks that the new rows arrive too, then cancels the job.
SET 'table.dml-sync' = 'false';
-- The sink sends its buffered rows to the node at every checkpoint (docs/flink.md, "Writing"):
-- a streaming INSERT needs checkpointing for its rows to arrive while it runs.
SET 'execution.checkpointing.interval' = '1 s';
SET 'pipeline.name' = 'strom-standalone-mirror';
USE shop;

CREATE TABLE orders_mirror (
  order_id BIGINT,
  shop_id  BIGINT,
  amount   DECIMAL(10, 2)
) WITH ('bucket.num' = '1');

-- Same columns, key, partitioning and options as the wide table.
CREATE TABLE stat_mirror LIKE shop_stat_wide;

EXECUTE STATEMENT SET
BEGIN
  -- The log table from its first row on, then every append as it commits.
  INSERT INTO orders_mirror
  SELECT order_id, shop_id, amount FROM orders;
  -- The primary-key table: its snapshot, then its changelog (updates included); new
  -- partitions are looked for every second instead of every minute.
  INSERT INTO stat_mirror
  SELECT * FROM shop_stat_wide /*+ OPTIONS('scan.partition.discovery.interval' = '1 s') */;
END;
