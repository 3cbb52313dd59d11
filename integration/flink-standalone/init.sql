-- Run by every sql-client.sh session of run.sh (`sql-client.sh -i init.sql -f <step>.sql`):
-- the Strom catalog. It keeps no state, so each session just declares it again; databases and
-- tables live on the node. run.sh replaces ${STROM_ENDPOINT} with the node it started.
CREATE CATALOG strom WITH (
  'type' = 'strom',
  'endpoint' = '${STROM_ENDPOINT}'
);
USE CATALOG strom;
