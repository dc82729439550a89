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

# The release asset of the K3s binary for an architecture.
k3s_asset() {
  case $1 in
    amd64) echo k3s ;;
    *) echo "k3s-$1" ;;
  esac
}

# The platform's charts: release namespace chart repository version-variable pin-variable.
# shellcheck disable=SC2034  # used by bootstrap.sh and airgap-bundle.sh
CHARTS=(
  "ngf nginx-gateway nginx-gateway-fabric oci://ghcr.io/nginx/charts NGF_CHART_VERSION NGF_CHART_SHA256"
  "cert-manager cert-manager cert-manager https://charts.jetstack.io CERT_MANAGER_CHART_VERSION CERT_MANAGER_CHART_SHA256"
  "sealed-secrets kube-system sealed-secrets https://bitnami-labs.github.io/sealed-secrets SEALED_SECRETS_CHART_VERSION SEALED_SECRETS_CHART_SHA256"
  "argocd argocd argo-cd https://argoproj.github.io/argo-helm ARGO_CD_CHART_VERSION ARGO_CD_CHART_SHA256"
  "monitoring monitoring kube-prometheus-stack https://prometheus-community.github.io/helm-charts KUBE_PROMETHEUS_STACK_CHART_VERSION KUBE_PROMETHEUS_STACK_CHART_SHA256"
  "cnpg cnpg-system cloudnative-pg https://cloudnative-pg.github.io/charts CLOUDNATIVE_PG_CHART_VERSION CLOUDNATIVE_PG_CHART_SHA256"
)

# The value of a pin in versions.env, by name; refuses an empty or malformed pin.
pinned_sha256() {
  local name=$1 value
  value=${!name:-}
  [[ -n $value ]] || die "$name is not pinned in k3s/versions.env: refusing an unverified download (see k3s/README.md, Pinned checksums)"
  [[ $value =~ ^[0-9a-f]{64}$ ]] || die "$name in k3s/versions.env is not a SHA-256 (64 hex digits)"
  echo "$value"
}

# Where the release publishes a pin's value, as "KIND WHERE ENTRY [VERSION]":
#   sums URL FILE              a sha256sum-style file; the line of FILE (by base name)
#   index URL CHART VERSION    a Helm repository's index.yaml; the digest of that chart version
#   oci REGISTRY REPO TAG      an OCI registry; the chart layer's digest in the tag's manifest
#   release URL FILE           GitHub's "get a release" answer; the digest of the asset FILE
# Nothing for a pin with no published checksum (the Gateway API files: set in versions.env).
checksum_source() {
  local name=$1 arch="" k3s_base suc_base entry chart repo version pin
  case $name in
    *_AMD64) arch=amd64 ;;
    *_ARM64) arch=arm64 ;;
  esac
  k3s_base="https://github.com/k3s-io/k3s/releases/download/${K3S_VERSION//+/%2B}"
  suc_base="https://github.com/rancher/system-upgrade-controller/releases/download/$SYSTEM_UPGRADE_CONTROLLER_VERSION"
  case $name in
    K3S_SHA256_*) echo "sums $k3s_base/sha256sum-$arch.txt $(k3s_asset "$arch")" ;;
    K3S_AIRGAP_IMAGES_SHA256_*)
      echo "sums $k3s_base/sha256sum-$arch.txt k3s-airgap-images-$arch.tar.zst"
      ;;
    HELM_SHA256_*)
      echo "sums https://get.helm.sh/helm-$HELM_VERSION-linux-$arch.tar.gz.sha256sum helm-$HELM_VERSION-linux-$arch.tar.gz"
      ;;
    # Its release's checksum file lists the files of dist/artifacts, the manifests included.
    SYSTEM_UPGRADE_CONTROLLER_CRD_SHA256) echo "sums $suc_base/sha256sum-amd64.txt crd.yaml" ;;
    SYSTEM_UPGRADE_CONTROLLER_MANIFEST_SHA256)
      echo "sums $suc_base/sha256sum-amd64.txt system-upgrade-controller.yaml"
      ;;
    # No checksum file in its release: the digest GitHub computed when the asset was uploaded.
    PLUGIN_BARMAN_CLOUD_MANIFEST_SHA256)
      echo "release https://api.github.com/repos/cloudnative-pg/plugin-barman-cloud/releases/tags/$PLUGIN_BARMAN_CLOUD_VERSION manifest.yaml"
      ;;
    *_CHART_SHA256)
      for entry in "${CHARTS[@]}"; do
        read -r _ _ chart repo version pin <<<"$entry"
        [[ $pin == "$name" ]] || continue
        if [[ $repo == oci://* ]]; then
          repo=${repo#oci://}
          echo "oci ${repo%%/*} ${repo#*/}/$chart ${!version}"
        else
          echo "index $repo/index.yaml $chart ${!version}"
        fi
      done
      ;;
  esac
}

# curl over HTTPS only, bounded in time, retried: every download goes through here.
download() {
  curl --fail --silent --show-error --location --proto '=https' --tlsv1.2 \
    --connect-timeout 15 --max-time 600 --retry 3 --retry-delay 2 "$@"
}

# The SHA-256 a release publishes for the artefact of a pin (see checksum_source), fetched over
# HTTPS, as the upstream K3s installer does when it is given no checksum.
published_sha256() {
  local name=$1 kind where entry version value="" work
  read -r kind where entry version <<<"$(checksum_source "$name")"
  [[ -n $kind ]] || die "$name: its release publishes no checksum file; set it in k3s/versions.env"
  work=$(mktemp -d)
  case $kind in
    sums)
      download --output "$work/sums" "$where" || die "$name: cannot fetch $where"
      value=$(awk -v wanted="$entry" '{ file = $2; sub(/^[*]/, "", file); sub(/.*[/]/, "", file) }
        file == wanted { print $1; exit }' "$work/sums")
      ;;
    index)
      download --output "$work/index.yaml" "$where" || die "$name: cannot fetch $where"
      value=$(index_digest "$work/index.yaml" "$entry" "$version")
      ;;
    oci) value=$(oci_chart_digest "$where" "$entry" "$version" "$work") ;;
    release)
      download --output "$work/release.json" "$where" || die "$name: cannot fetch $where"
      value=$(release_asset_digest "$work/release.json" "$entry")
      ;;
  esac
  rm -rf "$work"
  [[ $value =~ ^[0-9a-f]{64}$ ]] || die "$name: no SHA-256 for $entry ${version:-}in $where"
  echo "$value"
}

# The digest of CHART VERSION in a Helm repository index (entries: <chart>: [ {digest, version} ]).
index_digest() {
  awk -v chart="$2" -v version="$3" '
    /^  [^ -][^:]*:[ ]*$/ { current = $1; sub(/:$/, "", current); digest = ""; next }
    current != chart { next }
    /^  - / { digest = "" }
    /^ *(- )?digest:/ { digest = $NF; gsub(/"/, "", digest) }
    /^ *(- )?version:/ { found = $NF; gsub(/"/, "", found); if (found == version) { print digest; exit } }
  ' "$1"
}

# The chart layer's digest in an OCI manifest: the SHA-256 of the .tgz that helm pull writes.
oci_chart_digest() {
  local registry=$1 repo=$2 tag=$3 work=$4 token
  download --output "$work/token" "https://$registry/token?scope=repository:$repo:pull" ||
    die "cannot get a pull token for $registry/$repo"
  token=$(tr -d ' \n' <"$work/token" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
  download --output "$work/manifest" --header "Authorization: Bearer $token" \
    --header "Accept: application/vnd.oci.image.manifest.v1+json" \
    "https://$registry/v2/$repo/manifests/$tag" || die "cannot fetch the manifest of $registry/$repo:$tag"
  # One line per JSON object; the digest of the one of the chart's media type.
  tr -d ' \n' <"$work/manifest" | sed 's/[{}]/\n/g' |
    grep -F '"mediaType":"application/vnd.cncf.helm.chart.content.v1.tar+gzip"' |
    grep -o 'sha256:[0-9a-f]\{64\}' | head -n 1 | cut -d: -f2
}

# The SHA-256 of the asset FILE in a GitHub release (REST "get a release"): each entry of `assets`
# has its `name` and `digest` ("sha256:<hex>", computed by GitHub at upload). Each asset's nested
# `uploader` object is dropped first, so that an asset's fields end up on one line.
release_asset_digest() {
  tr -d ' \n' <"$1" | sed 's/"uploader":{[^{}]*}//g; s/[{}]/\n/g' |
    awk -v wanted="\"name\":\"$2\"" '!found && index($0, wanted) &&
      match($0, /"digest":"sha256:[0-9a-f]+"/) { print substr($0, RSTART + 17, 64); found = 1 }'
}

# Checks every named pin before anything is changed: a set pin must be a SHA-256; an empty one
# takes the value its release publishes (printed, to be pinned with k3s/pins.sh). Air-gapped,
# nothing can be fetched, so an empty pin stops here.
require_pins() {
  local name value
  for name in "$@"; do
    value=${!name:-}
    if [[ -z $value ]]; then
      [[ -z ${AIRGAP_DIR:-} ]] || die "$name is not pinned in k3s/versions.env; an air-gapped install needs every pin (run k3s/pins.sh on a connected machine)"
      value=$(published_sha256 "$name")
      log "$name is not pinned: verifying against the release's published checksum $value (pin it: k3s/pins.sh)"
      printf -v "$name" %s "$value"
    fi
    pinned_sha256 "$name" >/dev/null
  done
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
  download --output "$2" "$1"
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
