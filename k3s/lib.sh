# Shared helpers for the K3s host scripts (sourced, not executed).
# shellcheck shell=bash

K3S_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC2034  # used by the scripts that source this file
REPO_DIR=$(cd "$K3S_DIR/.." && pwd)
# shellcheck source=k3s/versions.env
source "$K3S_DIR/versions.env"

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

require_root() {
  [[ $(id -u) -eq 0 ]] || die "run as root (sudo $0)"
}

require_command() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is required: $2"
}

# curl with a connect and a total timeout and a few retries: every download is bounded.
fetch() {
  curl --fail --silent --show-error --location --proto '=https' --tlsv1.2 \
    --connect-timeout 15 --max-time 600 --retry 3 --retry-delay 2 --output "$2" "$1"
}

# Copies a file into place only when its content differs; prints "changed" when it did.
install_if_changed() {
  local source=$1 target=$2 mode=$3
  if [[ -f $target ]] && cmp -s "$source" "$target"; then
    return 0
  fi
  install -D -m "$mode" "$source" "$target"
  echo changed
}

export KUBECONFIG=${KUBECONFIG:-/etc/rancher/k3s/k3s.yaml}
