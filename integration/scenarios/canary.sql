-- Canary monitoring (the seeds' scenario 4): front-end telemetry lands in one wide log table
-- (45 columns, several of them long strings); the monitoring job needs 30 of them, plus the
-- `args` column it filters on. The node prunes the other 14 before sending: the job receives
-- 31 columns, and the node's `table_stats` counter of bytes sent proves it. The seeds' SQL
-- uses KEYVALUE(args, ',', '=', 'release_type'), a vendor function; Flink's STR_TO_MAP does
-- the same.

-- step: tables
CREATE TABLE log_page_ri (
  user_id BIGINT, device_id STRING, session_id STRING, app_name STRING, app_version STRING,
  release_channel STRING, os STRING, os_version STRING, brand STRING, model STRING,
  screen STRING, network STRING, carrier STRING, country STRING, province STRING,
  city STRING, lng DOUBLE, lat DOUBLE, page_name STRING, page_type STRING,
  spm_a STRING, spm_b STRING, spm_c STRING, spm_d STRING, event_id INT,
  event_type STRING, event_time TIMESTAMP(3), duration_ms BIGINT, shop_id BIGINT, item_id BIGINT,
  scene STRING, ab_bucket STRING, is_login BOOLEAN, is_new_user BOOLEAN, exposure_cnt INT,
  click_cnt INT, url STRING, referrer STRING, user_agent STRING, trace_id STRING,
  extra_json STRING, request_headers STRING, args STRING, mm STRING, ds STRING
) WITH ('bucket.num' = '4');
CREATE TABLE ads_gray_monitoring_ri (
  user_id BIGINT, device_id STRING, app_name STRING, app_version STRING, release_channel STRING,
  os STRING, os_version STRING, brand STRING, model STRING, network STRING,
  carrier STRING, country STRING, province STRING, city STRING, page_name STRING,
  page_type STRING, spm_a STRING, spm_b STRING, spm_c STRING, spm_d STRING,
  event_id INT, event_type STRING, event_time TIMESTAMP(3), duration_ms BIGINT, shop_id BIGINT,
  item_id BIGINT, scene STRING, ab_bucket STRING, mm STRING, ds STRING
) WITH ('bucket.num' = '2');
CREATE TABLE ads_gray_monitoring_permm_ri (
  ds STRING,
  mm STRING,
  app_version STRING,
  page_name STRING,
  pv BIGINT,
  duration_ms_sum BIGINT,
  PRIMARY KEY (ds, mm, app_version, page_name) NOT ENFORCED
) WITH ('bucket.num' = '2');

-- step: load (batch): 100 000 events, one in ten from the canary (grey) release
CREATE TEMPORARY TABLE page_events (i BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '100000',
  'rows-per-second' = '1000000000', 'fields.i.kind' = 'sequence', 'fields.i.start' = '0', 'fields.i.end' = '99999');
INSERT INTO log_page_ri
SELECT
  MOD(i * 31, 20000), CONCAT('dev-', CAST(MOD(i * 31, 20000) AS STRING)), CONCAT('sess-', CAST(i / 7 AS STRING)),
  'instant-commerce', CASE WHEN MOD(i, 10) = 0 THEN '9.2.0-grey' ELSE '9.1.4' END,
  CASE WHEN MOD(i, 10) = 0 THEN 'grey' ELSE 'stable' END, CASE WHEN MOD(i, 3) = 0 THEN 'ios' ELSE 'android' END,
  CONCAT('1', CAST(MOD(i, 5) AS STRING), '.0'), CONCAT('brand-', CAST(MOD(i, 12) AS STRING)),
  CONCAT('model-', CAST(MOD(i, 97) AS STRING)), '1170x2532', CASE WHEN MOD(i, 4) = 0 THEN 'wifi' ELSE '5g' END,
  CONCAT('carrier-', CAST(MOD(i, 3) AS STRING)), 'CN', CONCAT('province-', CAST(MOD(i, 31) AS STRING)),
  CONCAT('city-', CAST(MOD(i, 300) AS STRING)), CAST(120.0 + MOD(i, 1000) / 1000.0 AS DOUBLE), CAST(30.0 + MOD(i, 777) / 1000.0 AS DOUBLE),
  CONCAT('page_', CAST(MOD(i, 8) AS STRING)), CASE WHEN MOD(i, 2) = 0 THEN 'shop' ELSE 'item' END,
  'a2141', CONCAT('b', CAST(MOD(i, 50) AS STRING)), CONCAT('c', CAST(MOD(i, 20) AS STRING)),
  CONCAT('d', CAST(MOD(i, 10) AS STRING)), CAST(MOD(i, 2000) AS INT), CASE WHEN MOD(i, 5) = 0 THEN 'click' ELSE 'expose' END,
  TIMESTAMPADD(SECOND, CAST(i / 100 AS INT), TIMESTAMP '2026-12-06 12:00:00'), MOD(i, 900) + 100, MOD(i, 500), i,
  CONCAT('scene-', CAST(MOD(i, 6) AS STRING)), CONCAT('ab-', CAST(MOD(i, 4) AS STRING)), MOD(i, 3) > 0, MOD(i, 50) = 0,
  CAST(MOD(i, 9) AS INT), CAST(MOD(i, 2) AS INT),
  CONCAT('https://m.example.com/shop/', CAST(MOD(i, 500) AS STRING), '/item/', CAST(i AS STRING),
         '?spm=a2141.b', CAST(MOD(i, 50) AS STRING), '.c', CAST(MOD(i, 20) AS STRING), '&scm=1007.home.recommend&pvid=',
         CAST(i * 7919 AS STRING)),
  CONCAT('https://m.example.com/home?from=push&campaign=winter-sale-', CAST(MOD(i, 40) AS STRING), '&ref=', CAST(i / 3 AS STRING)),
  CONCAT('Mozilla/5.0 (Linux; Android 1', CAST(MOD(i, 5) AS STRING), '; model-', CAST(MOD(i, 97) AS STRING),
         ') AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.', CAST(MOD(i, 200) AS STRING),
         ' Mobile Safari/537.36 InstantCommerce/9.1'),
  CONCAT('trace-', CAST(i * 104729 AS STRING), '-', CAST(MOD(i, 65536) AS STRING)),
  CONCAT('{"exp":"', CAST(MOD(i, 1000) AS STRING), '","rec":{"algo":"dssm-v', CAST(MOD(i, 7) AS STRING),
         '","score":0.', CAST(MOD(i * 37, 1000) AS STRING), ',"slots":[1,2,3,5,8,13]},"geo":"',
         CAST(MOD(i, 300) AS STRING), '"}'),
  CONCAT('accept=application/json;accept-language=zh-CN,zh;q=0.9;x-request-id=', CAST(i * 31337 AS STRING),
         ';x-app-build=', CAST(MOD(i, 9000) AS STRING), ';x-net-quality=', CAST(MOD(i, 5) AS STRING)),
  CONCAT('release_type=', CASE WHEN MOD(i, 10) = 0 THEN 'grey' ELSE 'base' END, ',abtest=', CAST(MOD(i, 4) AS STRING),
         ',src=', CASE WHEN MOD(i, 3) = 0 THEN 'ios' ELSE 'android' END),
  LPAD(CAST(MOD(i / 100, 60) AS STRING), 2, '0'), '20261206'
FROM page_events;

-- step: monitor (streaming): the canary rows, 30 columns (the node sends 31: `args` is read for the filter)
INSERT INTO ads_gray_monitoring_ri
SELECT
  user_id, device_id, app_name, app_version, release_channel, os, os_version, brand, model, network,
  carrier, country, province, city, page_name, page_type, spm_a, spm_b, spm_c, spm_d,
  event_id, event_type, event_time, duration_ms, shop_id, item_id, scene, ab_bucket, mm, ds
FROM log_page_ri
WHERE STR_TO_MAP(args, ',', '=')['release_type'] = 'grey';

-- step: cube (streaming): per-minute canary page views and time on page
INSERT INTO ads_gray_monitoring_permm_ri
SELECT ds, mm, app_version, page_name, COUNT(*) AS pv, SUM(duration_ms) AS duration_ms_sum
FROM log_page_ri
WHERE STR_TO_MAP(args, ',', '=')['release_type'] = 'grey'
GROUP BY ds, mm, app_version, page_name;
