#!/bin/sh
# Restores service databases from the dumps backup.sh wrote to the backup volume, in the cluster:
#   kubectl -n <namespace> exec statefulset/postgres -c postgres -- \
#     restore-databases <stamp | dump file name> [database ...]
# A stamp (20261206T031700Z) restores every database dumped by that run, or only the databases
# named after it; a file name (backend-20261206T031700Z.dump) restores that one database.
# Every dump is checked before anything changes. Each dump goes into a fresh database first and
# replaces the live one only when complete, so a database is either exactly the dump's or as it
# was. Objects are owned by the database's owner (the service's role), as before. Stop the service's
# writers first, or they write between the restore's statements and the service's next request.
set -eu
: "${BACKUP_DIR:=/backups}"
export PGDATABASE="${PGDATABASE:-postgres}"

usage() {
  echo "usage: restore-databases <stamp, e.g. 20261206T031700Z | <database>-<stamp>.dump> [database ...]" >&2
  exit 2
}
fail() {
  echo "restore: $*" >&2
  exit 1
}

[ $# -ge 1 ] || usage
name=$1
shift
case "$name" in
  "" | */* | .* | -*) usage ;;
  *.dump) dumps="$BACKUP_DIR/$name" ;;
  *) dumps=$(find "$BACKUP_DIR" -maxdepth 1 -type f -name "*-$name.dump" | sort) ;;
esac
[ -n "$dumps" ] || fail "no dump with stamp '$name' in $BACKUP_DIR (ls $BACKUP_DIR lists them)"

database_of() {
  basename "$1" | sed -n 's/^\([a-z_][a-z0-9_]*\)-[0-9]\{8\}T[0-9]\{6\}Z\.dump$/\1/p'
}

# Check everything first: the dumps exist and are readable archives, their databases exist.
plan=""
for dump in $dumps; do
  [ -f "$dump" ] || fail "no such dump: $dump"
  database=$(database_of "$dump")
  [ -n "$database" ] || fail "$dump: not a backup.sh dump name (<database>-<YYYYMMDDTHHMMSSZ>.dump)"
  if [ $# -gt 0 ]; then
    wanted=no
    for only in "$@"; do [ "$only" = "$database" ] && wanted=yes; done
    [ "$wanted" = yes ] || continue
  fi
  pg_restore --list "$dump" >/dev/null || fail "$dump: not a readable pg_dump archive"
  # psql interpolates :'db' (quoted) only in what it reads, not in -c.
  owner=$(echo "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = :'db'" |
    psql --no-psqlrc -XAtq -v ON_ERROR_STOP=1 -v db="$database")
  [ -n "$owner" ] || fail "database $database does not exist (the chart's ensure-databases Job creates it)"
  plan="$plan $dump:$database:$owner"
done
for only in "$@"; do
  case "$plan" in
    *":$only:"*) ;;
    *) fail "no dump of database '$only' for '$name' in $BACKUP_DIR" ;;
  esac
done

sql() {
  psql --no-psqlrc -Xq -v ON_ERROR_STOP=1 -v db="$database" -v owner="$owner" \
    -v fresh="${database}__restoring" -v old="${database}__replaced"
}

for entry in $plan; do
  dump=${entry%%:*}
  rest=${entry#*:}
  database=${rest%%:*}
  owner=${rest#*:}
  # Into a fresh database first: the live one stays as it was until the dump is fully in.
  sql <<'SQL'
SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', :'fresh') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'fresh', :'owner') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'fresh') \gexec
SQL
  pg_restore --no-owner --role="$owner" --exit-on-error --single-transaction \
    --dbname="${database}__restoring" "$dump"
  # Then swap: no new sessions on the old one, end its sessions, rename both, drop the old.
  sql <<'SQL'
SELECT format('ALTER DATABASE %I ALLOW_CONNECTIONS false', :'db') \gexec
\o /dev/null
SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :'db';
\o
SELECT format('ALTER DATABASE %I RENAME TO %I', :'db', :'old') \gexec
SELECT format('ALTER DATABASE %I RENAME TO %I', :'fresh', :'db') \gexec
SELECT format('DROP DATABASE %I WITH (FORCE)', :'old') \gexec
SQL
  echo "restore: $database from $dump (owner $owner)"
done
