#!/usr/bin/env bash
# Fills a directory with everything install.sh --airgap and bootstrap.sh (AIRGAP_DIR) need, each
# file checked against its pin in versions.env: the K3s binary and its airgap image archive, Helm,
# the Gateway API CRDs, the platform's charts, the Barman Cloud plugin's manifest and the
# system-upgrade-controller manifests.
# Run it on a connected machine of the node's architecture, then copy the directory to the node.
#
#   k3s/airgap-bundle.sh /srv/airgap
#
# Container images beyond K3s's own (the gateway, cert-manager, Sealed Secrets, Argo CD, the
# platform's services, PostgreSQL, Redis) are not in this bundle: see k3s/README.md.
set -euo pipefail
# shellcheck source=k3s/bootstrap.sh
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"

usage() {
  echo "usage: $0 OUT_DIR" >&2
  exit 2
}

bundle_k3s() {
  local out=$1 arch binary base
  arch=$(host_arch)
  binary=$(k3s_asset "$arch")
  base="https://github.com/k3s-io/k3s/releases/download/${K3S_VERSION//+/%2B}"
  fetch_verified "$base/$binary" "$out/$binary" "K3S_SHA256_${arch^^}"
  fetch_verified "$base/k3s-airgap-images-$arch.tar.zst" "$out/k3s-airgap-images-$arch.tar.zst" \
    "K3S_AIRGAP_IMAGES_SHA256_${arch^^}"
}

bundle_helm() {
  local out=$1 arch
  arch=$(host_arch)
  fetch_verified "https://get.helm.sh/helm-$HELM_VERSION-linux-$arch.tar.gz" \
    "$out/helm-$HELM_VERSION-linux-$arch.tar.gz" "HELM_SHA256_${arch^^}"
}

bundle_gateway_api_crds() {
  local out=$1 name
  for name in "${GATEWAY_API_CRD_FILES[@]}"; do
    fetch_verified "$(gateway_api_crd_url "$name")" "$out/gateway.networking.k8s.io_$name.yaml" \
      "$(gateway_api_crd_pin "$name")"
  done
}

bundle_charts() {
  local out=$1 entry release namespace chart repo version pin
  for entry in "${CHARTS[@]}"; do
    read -r release namespace chart repo version pin <<<"$entry"
    version=${!version}
    pinned_sha256 "$pin" >/dev/null || exit 1
    log "chart $chart $version (release $release in $namespace)"
    pull_chart "$chart" "$repo" "$version" "$out/$chart-$version.tgz"
    verify_sha256 "$out/$chart-$version.tgz" "$pin"
  done
}

bundle_upgrade_controller() {
  local out=$1 base
  base="https://github.com/rancher/system-upgrade-controller/releases/download/$SYSTEM_UPGRADE_CONTROLLER_VERSION"
  fetch_verified "$base/crd.yaml" "$out/crd.yaml" SYSTEM_UPGRADE_CONTROLLER_CRD_SHA256
  fetch_verified "$base/system-upgrade-controller.yaml" "$out/system-upgrade-controller.yaml" \
    SYSTEM_UPGRADE_CONTROLLER_MANIFEST_SHA256
}

bundle_main() {
  [[ $# -eq 1 ]] || usage
  local out work
  mkdir -p "$1"
  out=$(cd "$1" && pwd)
  unset AIRGAP_DIR
  require_command curl "apt-get install -y curl"
  work=$(mktemp -d)
  # Expanded now: the EXIT trap runs after this function's locals are gone.
  # shellcheck disable=SC2064
  trap "rm -rf -- $(printf %q "$work")" EXIT
  local arch
  arch=$(host_arch)
  # shellcheck disable=SC2046  # one pin name per word
  require_pins "K3S_SHA256_${arch^^}" "K3S_AIRGAP_IMAGES_SHA256_${arch^^}" $(bootstrap_pins)
  bundle_k3s "$out"
  bundle_helm "$out"
  HELM=$work/helm
  ensure_helm "$work"
  bundle_gateway_api_crds "$out"
  bundle_charts "$out"
  fetch_verified "$(barman_cloud_plugin_url)" "$out/manifest.yaml" PLUGIN_BARMAN_CLOUD_MANIFEST_SHA256
  bundle_upgrade_controller "$out"
  log "done: copy $out to the node, then install.sh --airgap DIR and AIRGAP_DIR=DIR bootstrap.sh"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  bundle_main "$@"
fi
