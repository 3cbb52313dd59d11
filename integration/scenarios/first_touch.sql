-- First-customer touch (the seeds' Flink applicative overview): a `first_row` table keeps each
-- customer's first touch event (later touches are dropped by the node, no dedup state in Flink),
-- orders are enriched with customer data by a lookup join, and first touches are joined with
-- the customer table by a delta join (lookups into both tables instead of join state).

-- step: tables
CREATE TABLE customers (
  customer_id BIGINT,
  name STRING,
  segment STRING,
  country STRING,
  PRIMARY KEY (customer_id) NOT ENFORCED
) WITH ('bucket.num' = '4', 'table.delete.behavior' = 'IGNORE');
CREATE TABLE first_customer_touch (
  customer_id BIGINT,
  channel STRING,
  campaign STRING,
  touch_time TIMESTAMP(3),
  PRIMARY KEY (customer_id) NOT ENFORCED
) WITH ('bucket.num' = '4', 'table.merge-engine' = 'first_row');
CREATE TABLE orders (
  order_id BIGINT,
  customer_id BIGINT,
  amount DECIMAL(10, 2),
  order_time TIMESTAMP(3)
) WITH ('bucket.num' = '4');
CREATE TABLE enriched_orders (
  order_id BIGINT,
  customer_id BIGINT,
  amount DECIMAL(10, 2),
  name STRING,
  segment STRING,
  country STRING
) WITH ('bucket.num' = '4');
CREATE TABLE first_touch_customers (
  customer_id BIGINT,
  name STRING,
  segment STRING,
  channel STRING,
  campaign STRING,
  touch_time TIMESTAMP(3),
  PRIMARY KEY (customer_id) NOT ENFORCED
) WITH ('bucket.num' = '4');

-- step: load (batch): 20 000 customers and 100 000 orders
CREATE TEMPORARY TABLE customer_seq (c BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '20000',
  'rows-per-second' = '1000000000', 'fields.c.kind' = 'sequence', 'fields.c.start' = '0', 'fields.c.end' = '19999');
CREATE TEMPORARY TABLE order_seq (o BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '100000',
  'rows-per-second' = '1000000000', 'fields.o.kind' = 'sequence', 'fields.o.start' = '0', 'fields.o.end' = '99999');
INSERT INTO customers
SELECT c, CONCAT('customer-', CAST(c AS STRING)), CASE WHEN MOD(c, 5) = 0 THEN 'gold' ELSE 'standard' END,
       CONCAT('country-', CAST(MOD(c, 7) AS STRING))
FROM customer_seq;
INSERT INTO orders
SELECT o, MOD(o * 13, 20000), CAST(MOD(o, 10000) / 100.0 AS DECIMAL(10, 2)),
       TIMESTAMPADD(SECOND, CAST(o AS INT), TIMESTAMP '2026-12-06 00:00:00')
FROM order_seq;

-- step: touches (streaming): 100 000 touch events, 5 per customer, the first one kept
-- Raw events have no upsert key, which Flink 2.3 refuses for a primary-key sink unless told
-- otherwise; ON CONFLICT would make Flink keep state, the very thing the merge engine
-- replaces, so the check is turned off: the node decides which row of a key stays.
SET 'table.exec.sink.require-on-conflict' = 'false';
CREATE TEMPORARY TABLE touch_seq (t BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '100000',
  'rows-per-second' = '50000', 'fields.t.kind' = 'sequence', 'fields.t.start' = '0', 'fields.t.end' = '99999');
INSERT INTO first_customer_touch
SELECT MOD(t, 20000), CASE MOD(t / 20000, 3) WHEN 0 THEN 'push' WHEN 1 THEN 'search' ELSE 'social' END,
       CONCAT('campaign-', CAST(t / 20000 AS STRING)), TIMESTAMPADD(SECOND, CAST(t AS INT), TIMESTAMP '2026-12-01 00:00:00')
FROM touch_seq;

-- step: enrich (streaming): orders enriched with customer data through a lookup join
CREATE TEMPORARY VIEW orders_with_time AS SELECT *, PROCTIME() AS proc_time FROM orders;
INSERT INTO enriched_orders
SELECT o.order_id, o.customer_id, o.amount, c.name, c.segment, c.country
FROM orders_with_time AS o
JOIN customers FOR SYSTEM_TIME AS OF o.proc_time AS c ON o.customer_id = c.customer_id;

-- step: join (streaming, table.optimizer.delta-join.strategy = FORCE): first touches with customers
INSERT INTO first_touch_customers
SELECT f.customer_id, c.name, c.segment, f.channel, f.campaign, f.touch_time
FROM first_customer_touch AS f
JOIN customers AS c ON f.customer_id = c.customer_id;
