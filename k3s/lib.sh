# Shared helpers for the K3s host scripts (sourced, not executed).
# shellcheck shell=bash

# A failure inside $(...) fails the command that uses it (bash leaves errexit off there by default,
# so `x=$(f)` would carry on after a failing step in f).
shopt -s inherit_errexit

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

# The release architecture name of this machine (amd64 or arm64).
host_arch() {
  case $(uname -m) in
    x86_64 | amd64) echo amd64 ;;
    aarch64 | arm64) echo arm64 ;;
    *) die "unsupported architecture $(uname -m)" ;;
  esac
}

# The value of a pin in versions.env, by name; refuses an empty or malformed pin.
pinned_sha256() {
  local name=$1 value
  value=${!name:-}
  [[ -n $value ]] || die "$name is not pinned in k3s/versions.env: refusing an unverified download (see k3s/README.md, Pinned checksums)"
  [[ $value =~ ^[0-9a-f]{64}$ ]] || die "$name in k3s/versions.env is not a SHA-256 (64 hex digits)"
  echo "$value"
}

# Refuses a file whose SHA-256 differs from the pin named by $2.
verify_sha256() {
  local file=$1 name=$2 expected actual
  expected=$(pinned_sha256 "$name") || exit 1
  actual=$(sha256sum "$file" | awk '{ print $1 }')
  [[ $actual == "$expected" ]] || die "checksum mismatch for $(basename "$file"): got $actual, pinned $name=$expected"
}

# curl with a connect and a total timeout and a few retries: every download is bounded. With
# AIRGAP_DIR set nothing is downloaded: the file of the same name is taken from that directory
# (k3s/airgap-bundle.sh fills it on a connected machine).
fetch() {
  if [[ -n ${AIRGAP_DIR:-} ]]; then
    local name
    name=$(basename "$1")
    [[ -f $AIRGAP_DIR/$name ]] || die "$AIRGAP_DIR/$name is missing (see k3s/README.md, Air-gapped install)"
    cp "$AIRGAP_DIR/$name" "$2"
    return 0
  fi
  curl --fail --silent --show-error --location --proto '=https' --tlsv1.2 \
    --connect-timeout 15 --max-time 600 --retry 3 --retry-delay 2 --output "$2" "$1"
}

# Downloads $1 to $2 and keeps it only when its SHA-256 matches the pin named by $3.
fetch_verified() {
  local url=$1 target=$2 name=$3
  pinned_sha256 "$name" >/dev/null || exit 1
  fetch "$url" "$target.part"
  verify_sha256 "$target.part" "$name"
  mv "$target.part" "$target"
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
