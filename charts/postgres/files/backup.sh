#!/bin/sh
# Dumps every service database to the backup volume (custom format, restorable with pg_restore),
# then deletes dumps older than RETENTION_DAYS. A dump is written under a temporary name and
# renamed when complete, so a failed run never leaves a truncated file that looks valid.
# The run's dump names go to $BACKUP_DIR/latest-run (what offsite.sh copies off the node).
set -eu
: "${DATABASES:?DATABASES is required}"
: "${RETENTION_DAYS:?RETENTION_DAYS is required}"
: "${BACKUP_DIR:=/backups}"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
: > "$BACKUP_DIR/latest-run.partial"

for database in $DATABASES; do
  target="$BACKUP_DIR/$database-$stamp.dump"
  pg_dump --format=custom --no-owner --dbname="$database" --file="$target.partial"
  mv "$target.partial" "$target"
  echo "backup: $target ($(wc -c < "$target") bytes)"
  echo "$database-$stamp.dump" >> "$BACKUP_DIR/latest-run.partial"
done
mv "$BACKUP_DIR/latest-run.partial" "$BACKUP_DIR/latest-run"

find "$BACKUP_DIR" -maxdepth 1 -name '*.dump' -type f -mtime +"$RETENTION_DAYS" -print -delete
find "$BACKUP_DIR" -maxdepth 1 -name '*.partial' -type f -mmin +60 -print -delete
