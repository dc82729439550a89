#!/usr/bin/env bash
# Fills the empty checksum pins of k3s/versions.env with the values each release publishes
# (K3s's and system-upgrade-controller's sha256sum-<arch>.txt, Helm's .sha256sum, the charts'
# repository index.yaml digests or OCI manifest), fetched over HTTPS, and prints each one.
# Review the diff and commit it: from then on every install checks against these pins.
#
#   k3s/pins.sh            fill the empty pins
#   k3s/pins.sh --check    compare every pin with its published value; exit 1 on a difference
set -euo pipefail
# shellcheck source=k3s/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  echo "usage: $0 [--check]" >&2
  exit 2
}

# Every checksum pin of versions.env with a published value, by name.
published_pins() {
  local name
  sed -n 's/^\([A-Z0-9_]*SHA256[A-Z0-9_]*\)=.*$/\1/p' "$K3S_DIR/versions.env" |
    while read -r name; do
      [[ -z $(checksum_source "$name") ]] || echo "$name"
    done
}

fill() {
  local name value
  for name in $(published_pins); do
    [[ -z ${!name:-} ]] || continue
    value=$(published_sha256 "$name")
    sed -i "s/^$name=\$/$name=$value/" "$K3S_DIR/versions.env"
    echo "$name=$value"
  done
}

check() {
  local name value differ=""
  for name in $(published_pins); do
    value=$(published_sha256 "$name")
    if [[ ${!name:-} == "$value" ]]; then
      echo "$name ok"
    else
      echo "$name differs: pinned '${!name:-}', published $value"
      differ=yes
    fi
  done
  [[ -z $differ ]]
}

case ${1:-} in
  "") [[ $# -eq 0 ]] || usage; require_command curl "apt-get install -y curl"; fill ;;
  --check) [[ $# -eq 1 ]] || usage; require_command curl "apt-get install -y curl"; check ;;
  *) usage ;;
esac
