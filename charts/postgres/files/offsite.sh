#!/bin/sh
# Copies the dumps of the last backup run (named in $BACKUP_DIR/latest-run by backup.sh) to an
# S3-compatible store with rclone, remote `offsite` (RCLONE_CONFIG_OFFSITE_* in the environment,
# the keys from a Secret), and proves each copy: the stored object is read back and its size and
# SHA-256 compared with the dump's. A copy that already matches is not sent again (reruns are
# harmless); any failure exits 1 naming the object.
set -eu
: "${OFFSITE_BUCKET:?OFFSITE_BUCKET is required}"
: "${BACKUP_DIR:=/backups}"
prefix=${OFFSITE_PREFIX:+${OFFSITE_PREFIX%/}/}

fail() {
  echo "offsite: $*" >&2
  exit 1
}

# "<bytes> <sha256>" of a local file.
local_digest() {
  printf '%s %s\n' "$(wc -c < "$1" | tr -d ' ')" "$(sha256sum < "$1" | cut -d' ' -f1)"
}

# The same of a stored object, its content downloaded (not the store's own word for it). A missing
# object is listed as nothing, without an error: that is a failure too.
stored_digest() {
  size=$(rclone lsf --format s "offsite:$1") && [ -n "$size" ] || return 1
  sum=$(rclone hashsum sha256 --download "offsite:$1") || return 1
  printf '%s %s\n' "$size" "${sum%% *}"
}

[ -f "$BACKUP_DIR/latest-run" ] || fail "no $BACKUP_DIR/latest-run: no backup run to copy"
while IFS= read -r name; do
  object="$OFFSITE_BUCKET/$prefix$name"
  want=$(local_digest "$BACKUP_DIR/$name")
  if [ "$(stored_digest "$object" 2>/dev/null)" = "$want" ]; then
    echo "offsite: s3://$object already stored ($want)"
    continue
  fi
  rclone copyto --s3-no-check-bucket --retries 2 "$BACKUP_DIR/$name" "offsite:$object" ||
    fail "upload of $BACKUP_DIR/$name to s3://$object failed"
  got=$(stored_digest "$object") || fail "s3://$object cannot be read back to verify it"
  [ "$got" = "$want" ] || fail "s3://$object is '$got', the dump is '$want' (bytes sha256)"
  echo "offsite: s3://$object verified ($want)"
done < "$BACKUP_DIR/latest-run"
