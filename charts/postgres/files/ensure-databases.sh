#!/bin/sh
# Creates (or updates) one role and one database per service, idempotently, so it is safe both as
# a docker-entrypoint-initdb.d script on first start and as the hook Job on every sync.
# Passwords are read from files (the mounted Secret, one key per service), never from arguments.
# SERVICES: space-separated service names; a service's database and role use '_' for '-'.
set -eu
: "${SERVICES:?SERVICES is required}"
: "${PASSWORDS_DIR:=/etc/postgres-service-passwords}"
export PGUSER="${PGUSER:-${POSTGRES_USER:-postgres}}"
export PGDATABASE="${PGDATABASE:-postgres}"

for service in $SERVICES; do
  role=$(printf '%s' "$service" | tr '-' '_')
  password_file="$PASSWORDS_DIR/$service"
  if [ ! -s "$password_file" ]; then
    echo "ensure-databases: no password for $service in $password_file" >&2
    exit 1
  fi
  # psql reads the password itself (backquote in \set), so it never appears in a process list.
  psql --no-psqlrc -v ON_ERROR_STOP=1 -v role="$role" -v password_file="$password_file" <<'SQL'
\set password `cat :password_file`
SELECT format('CREATE ROLE %I LOGIN', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', :'role', :'password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'role', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'role') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'role') \gexec
SQL
  echo "ensure-databases: $service ready (database and role $role)"
done

# The role postgres_exporter logs in as (MONITORING_ROLE, password in MONITORING_PASSWORD_FILE):
# pg_monitor's read-only statistics views and functions, and nothing else (no superuser, no
# database of its own), so a leaked exporter password reads no data.
if [ -n "${MONITORING_ROLE:-}" ]; then
  password_file=${MONITORING_PASSWORD_FILE:-}
  if [ -z "$password_file" ] || [ ! -s "$password_file" ]; then
    echo "ensure-databases: no password for $MONITORING_ROLE in MONITORING_PASSWORD_FILE (${password_file:-unset})" >&2
    exit 1
  fi
  psql --no-psqlrc -v ON_ERROR_STOP=1 -v role="$MONITORING_ROLE" -v password_file="$password_file" <<'SQL'
\set password `cat :password_file`
SELECT format('CREATE ROLE %I LOGIN', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD %L',
              :'role', :'password') \gexec
SELECT format('GRANT pg_monitor TO %I', :'role') \gexec
SQL
  echo "ensure-databases: monitoring role $MONITORING_ROLE ready (pg_monitor)"
fi
