#!/bin/sh
# Runs once, when the postgres volume is empty (docker-entrypoint-initdb.d).
# Four roles, three databases, so that a user's SQL node can never touch Dagster's storage:
#   dagster  -> database dagster   (run, event-log and schedule storage; dagster.yaml)
#   dp_store -> database dp_store  (the flow store; DP_STORE_URL)
#   dp_sql   -> database dp_data   (the nodes' tables; no rights on the other two, statement timeout)
#   dp_query -> database dp_data   (user SQL, CustomSQLQuery: SELECT on dp_sql's tables, nothing
#                                   else; read-only sessions, statement timeout)
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v dagster_pw="$DAGSTER_PG_PASSWORD" \
  -v store_pw="$DP_STORE_PASSWORD" \
  -v sql_pw="$DP_SQL_PASSWORD" \
  -v query_pw="$DP_QUERY_PASSWORD" <<'SQL'
CREATE ROLE dagster LOGIN PASSWORD :'dagster_pw';
CREATE DATABASE dagster OWNER dagster;
REVOKE ALL ON DATABASE dagster FROM PUBLIC;

CREATE ROLE dp_store LOGIN PASSWORD :'store_pw';
CREATE DATABASE dp_store OWNER dp_store;
REVOKE ALL ON DATABASE dp_store FROM PUBLIC;

CREATE ROLE dp_sql LOGIN PASSWORD :'sql_pw' NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
ALTER ROLE dp_sql SET statement_timeout = '60s';
CREATE DATABASE dp_data;
REVOKE ALL ON DATABASE dp_data FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE dp_data TO dp_sql;

CREATE ROLE dp_query LOGIN PASSWORD :'query_pw' NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
ALTER ROLE dp_query SET default_transaction_read_only = on;
ALTER ROLE dp_query SET statement_timeout = '60s';
GRANT CONNECT ON DATABASE dp_data TO dp_query;
SQL
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname dp_data <<'SQL'
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
CREATE SCHEMA IF NOT EXISTS dp AUTHORIZATION dp_sql;
ALTER ROLE dp_sql IN DATABASE dp_data SET search_path = dp, public;
GRANT USAGE ON SCHEMA dp TO dp_query;
ALTER DEFAULT PRIVILEGES FOR ROLE dp_sql IN SCHEMA dp GRANT SELECT ON TABLES TO dp_query;
ALTER ROLE dp_query IN DATABASE dp_data SET search_path = dp, public;
SQL
