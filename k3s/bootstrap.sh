#!/usr/bin/env bash
# Installs the cluster's platform: a pinned Helm, the platform-wide policies, the Gateway API
# CRDs, NGINX Gateway Fabric (its CRDs applied explicitly: helm upgrade never upgrades them) and
# the cluster's Gateway, cert-manager (issuing through that Gateway), Sealed Secrets, the
# CloudNativePG operator (PostgreSQL clusters that fail over) and its Barman Cloud plugin
# (backups and WAL archive to object storage), Argo CD, with
# the Prometheus Operator stack (kube-prometheus-stack) first so its CRDs exist for the others'
# ServiceMonitors and Argo CD's first sync, then the platform's scrapes (platform-monitoring.yaml),
# then hands the cluster to Argo CD by applying the AppProjects and the root app-of-apps; last,
# the optional system-upgrade-controller and its Plan, which nothing before depends on.
# Every download is checked against a SHA-256 pinned in versions.env; every pin is checked before
# the first change (an empty one takes the release's published checksum, printed to be pinned).
# Idempotent: helm upgrade --install and kubectl apply.
#
#   sudo ACME_EMAIL=ops@example.com k3s/bootstrap.sh   (after k3s/install.sh)
#   sudo AIRGAP_DIR=/srv/airgap k3s/bootstrap.sh      (no network: k3s/airgap-bundle.sh's output)
#
# Without ACME_EMAIL every listener's certificate comes from the cluster's own CA. With ACME_EMAIL
# and DNS01_PROVIDER=cloudflare (token in CLOUDFLARE_API_TOKEN_FILE or CLOUDFLARE_API_TOKEN, stored
# only in a Secret) Let's Encrypt issues the previews' wildcard by DNS-01; with ACME_EMAIL alone
# the wildcard comes from the cluster CA and the other hosts from Let's Encrypt.
set -euo pipefail
# shellcheck source=k3s/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Overridable so the download and checksum logic can be exercised without touching the host.
HELM=${HELM_BIN:-/usr/local/bin/helm}
# How long the Barman Cloud plugin may take to become Available (cert-manager issues its TLS first).
PLUGIN_READY_TIMEOUT=${PLUGIN_READY_TIMEOUT:-10m}

# The standard channel's files, in the order of the release's config/crd/kustomization.yaml.
# Each is pinned on its own (GATEWAY_API_CRD_SHA256_<NAME>) and applied as its own file: the
# files carry no leading `---`, so a concatenation of them is not a multi-document YAML stream.
GATEWAY_API_CRD_FILES=(
  gatewayclasses gateways grpcroutes httproutes referencegrants backendtlspolicies
  listenersets tlsroutes vap_safeupgrades
)

main() {
  require_root
  [[ -n ${AIRGAP_DIR:-} ]] || require_command curl "apt-get install -y curl"
  require_command kubectl "run k3s/install.sh first"
  kubectl get nodes >/dev/null || die "no cluster at $KUBECONFIG; run k3s/install.sh first"
  local work
  work=$(mktemp -d)
  # Expanded now: the EXIT trap runs after this function's locals are gone.
  # shellcheck disable=SC2064
  trap "rm -rf -- $(printf %q "$work")" EXIT

  check_dns01_provider
  # shellcheck disable=SC2046  # one pin name per word
  require_pins $(bootstrap_pins)
  ensure_helm "$work"
  log "PriorityClasses (k3s/cluster-policies.yaml)"
  kubectl apply -f "$K3S_DIR/cluster-policies.yaml"
  install_gateway_api_crds "$work"
  # First of the charts: its CRDs (ServiceMonitor, PodMonitor, PrometheusRule) exist when
  # cert-manager's and Argo CD's charts render their ServiceMonitors and when Argo CD first syncs.
  install_platform_chart "$work" monitoring --values "$K3S_DIR/kube-prometheus-stack-values.yaml"
  install_platform_chart "$work" ngf --values "$K3S_DIR/nginx-gateway-fabric-values.yaml"
  install_platform_chart "$work" cert-manager --values "$K3S_DIR/cert-manager-values.yaml"
  install_cluster_issuer "$work"
  install_platform_chart "$work" sealed-secrets --set fullnameOverride=sealed-secrets-controller \
    --set priorityClassName=chat-platform
  # Before Argo CD's first sync: the postgres chart's Clusters need the operator's CRDs and webhooks.
  install_platform_chart "$work" cnpg --values "$K3S_DIR/cloudnative-pg-values.yaml"
  install_barman_cloud_plugin "$work"
  install_platform_chart "$work" argocd --values "$REPO_DIR/argocd/install/values.yaml"
  log "Prometheus's scrapes of the platform components (k3s/platform-monitoring.yaml)"
  kubectl apply -f "$K3S_DIR/platform-monitoring.yaml"

  log "the cluster's Gateway and its routes (k3s/gateway.yaml, issuer $(gateway_issuer))"
  sed "s/cert-manager.io\/cluster-issuer: letsencrypt\$/cert-manager.io\/cluster-issuer: $(gateway_issuer)/" \
    "$K3S_DIR/gateway.yaml" | kubectl apply -f -

  log "Argo CD: AppProjects and the root app-of-apps"
  kubectl apply -f "$REPO_DIR/argocd/apps/projects.yaml"
  kubectl apply -f "$REPO_DIR/argocd/root.yaml"
  log "handed over: Argo CD now syncs argocd/apps from git"

  install_upgrade_controller "$work"
  log "done"
}

# Every pin this script verifies a download against (word-split by the caller).
bootstrap_pins() {
  local name entry pin
  echo "HELM_SHA256_$(host_arch | tr '[:lower:]' '[:upper:]')"
  for name in "${GATEWAY_API_CRD_FILES[@]}"; do
    gateway_api_crd_pin "$name"
  done
  for entry in "${CHARTS[@]}"; do
    read -r _ _ _ _ _ pin <<<"$entry"
    echo "$pin"
  done
  echo PLUGIN_BARMAN_CLOUD_MANIFEST_SHA256
  echo SYSTEM_UPGRADE_CONTROLLER_CRD_SHA256 SYSTEM_UPGRADE_CONTROLLER_MANIFEST_SHA256
}

# Installs the pinned Helm unless that version is already there.
ensure_helm() {
  local work=$1 arch pin
  if [[ -x $HELM && $("$HELM" version --template '{{.Version}}' 2>/dev/null) == "$HELM_VERSION" ]]; then
    log "helm $HELM_VERSION already installed"
    return 0
  fi
  arch=$(host_arch)
  pin=HELM_SHA256_${arch^^}
  log "installing helm $HELM_VERSION ($arch)"
  fetch_verified "https://get.helm.sh/helm-$HELM_VERSION-linux-$arch.tar.gz" "$work/helm.tar.gz" "$pin"
  tar -xzf "$work/helm.tar.gz" -C "$work" "linux-$arch/helm"
  install -D -m 0755 "$work/linux-$arch/helm" "$HELM"
}

# The pin name of one Gateway API CRD file: GATEWAY_API_CRD_SHA256_HTTPROUTES, ...
gateway_api_crd_pin() {
  echo "GATEWAY_API_CRD_SHA256_${1^^}"
}

gateway_api_crd_url() {
  echo "https://raw.githubusercontent.com/kubernetes-sigs/gateway-api/$GATEWAY_API_VERSION/config/crd/standard/gateway.networking.k8s.io_$1.yaml"
}

# Each file downloaded and checked against its own pin, then all applied in one kubectl call with
# one -f per file, so every document of every file reaches the API server.
install_gateway_api_crds() {
  local work=$1 name files=()
  log "Gateway API $GATEWAY_API_VERSION CRDs (standard channel)"
  for name in "${GATEWAY_API_CRD_FILES[@]}"; do
    fetch_verified "$(gateway_api_crd_url "$name")" "$work/gateway.networking.k8s.io_$name.yaml" \
      "$(gateway_api_crd_pin "$name")"
    files+=(-f "$work/gateway.networking.k8s.io_$name.yaml")
  done
  kubectl apply --server-side --force-conflicts "${files[@]}"
  kubectl wait --for=condition=Established --timeout=120s \
    crd/gatewayclasses.gateway.networking.k8s.io crd/gateways.gateway.networking.k8s.io \
    crd/httproutes.gateway.networking.k8s.io crd/referencegrants.gateway.networking.k8s.io
}

# The chart archive <chart>-<version>.tgz: helm pull, or from AIRGAP_DIR when set.
pull_chart() {
  local chart=$1 repo=$2 version=$3 archive=$4 pulled
  if [[ -n ${AIRGAP_DIR:-} ]]; then
    [[ -f $AIRGAP_DIR/$chart-$version.tgz ]] || die "$AIRGAP_DIR/$chart-$version.tgz is missing"
    cp "$AIRGAP_DIR/$chart-$version.tgz" "$archive"
    return 0
  fi
  pulled=$(mktemp -d)
  if [[ $repo == oci://* ]]; then
    "$HELM" pull "$repo/$chart" --version "$version" --destination "$pulled"
  else
    "$HELM" pull "$chart" --repo "$repo" --version "$version" --destination "$pulled"
  fi
  mv "$pulled"/*.tgz "$archive"
  rm -rf "$pulled"
}

# helm pull of a pinned chart version, checked against its pinned SHA-256, then installed from
# that verified archive:  install_chart WORK RELEASE NAMESPACE CHART REPO VERSION PIN [ARGS...]
install_chart() {
  local work=$1 release=$2 namespace=$3 chart=$4 repo=$5 version=$6 pin=$7
  shift 7
  local archive="$work/$chart-$version.tgz"
  log "helm: $release ($chart $version)"
  pinned_sha256 "$pin" >/dev/null || exit 1
  pull_chart "$chart" "$repo" "$version" "$archive"
  verify_sha256 "$archive" "$pin"
  apply_chart_crds "$work" "$chart" "$archive"
  "$HELM" upgrade --install "$release" "$archive" --namespace "$namespace" --create-namespace \
    --wait --timeout 10m "$@"
}

# Helm installs a chart's crds/ (its own and its subcharts': kube-prometheus-stack keeps them in
# charts/crds/crds/) on the first install only and never upgrades them: they are applied here from
# the verified archive with server-side apply (the Prometheus Operator's CRDs are too large for the
# client-side annotation), so a chart bump brings its CRDs along.
apply_chart_crds() {
  local chart=$2 archive=$3 crds=$1/$2-crds members file
  mapfile -t members < <(tar -tzf "$archive" | grep -E "^$chart/(charts/[^/]+/)*crds/[^/]+\.(yaml|yml|json)\$" || true)
  ((${#members[@]})) || return 0
  mkdir -p "$crds"
  tar -xzf "$archive" -C "$crds" "${members[@]}"
  log "$chart: the chart's CRDs (${#members[@]} files under crds/)"
  local args=()
  for file in "${members[@]}"; do args+=(-f "$crds/$file"); done
  kubectl apply --server-side --force-conflicts "${args[@]}"
}

# install_chart for one entry of CHARTS, by release name:  install_platform_chart WORK RELEASE [ARGS]
install_platform_chart() {
  local work=$1 wanted=$2 entry release namespace chart repo version pin
  shift 2
  for entry in "${CHARTS[@]}"; do
    read -r release namespace chart repo version pin <<<"$entry"
    if [[ $release == "$wanted" ]]; then
      install_chart "$work" "$release" "$namespace" "$chart" "$repo" "${!version}" "$pin" "$@"
      return 0
    fi
  done
  die "no chart for release $wanted"
}

# The ClusterIssuer the Gateway's listeners get their certificates from: Let's Encrypt with an
# ACME_EMAIL, else the cluster's own CA (k3s/cluster-ca-issuer.yaml).
gateway_issuer() {
  if [[ -n ${ACME_EMAIL:-} ]]; then echo letsencrypt; else echo chat-ca; fi
}

# Before any change: an unknown provider or a missing token stops bootstrap.
check_dns01_provider() {
  case ${DNS01_PROVIDER:-} in
    "") ;;
    cloudflare)
      [[ -n ${ACME_EMAIL:-} ]] || die "DNS01_PROVIDER needs ACME_EMAIL (a Let's Encrypt account)"
      [[ -n ${CLOUDFLARE_API_TOKEN_FILE:-} && -r ${CLOUDFLARE_API_TOKEN_FILE:-} ]] ||
        [[ -n ${CLOUDFLARE_API_TOKEN:-} ]] ||
        die "DNS01_PROVIDER=cloudflare needs CLOUDFLARE_API_TOKEN_FILE (readable) or CLOUDFLARE_API_TOKEN" ;;
    *) die "DNS01_PROVIDER=$DNS01_PROVIDER is not supported (only: cloudflare)" ;;
  esac
}

# The token goes from a file to the Secret; never in an argument (printf is a shell builtin).
create_dns01_secret() {
  local file=${CLOUDFLARE_API_TOKEN_FILE:-$1/cloudflare-api-token}
  if [[ -z ${CLOUDFLARE_API_TOKEN_FILE:-} ]]; then
    (umask 077 && printf %s "$CLOUDFLARE_API_TOKEN" >"$file")
  fi
  kubectl -n cert-manager create secret generic cloudflare-api-token \
    --from-file=api-token="$file" --dry-run=client -o yaml | kubectl apply -f -
}

install_cluster_issuer() {
  if [[ -z ${ACME_EMAIL:-} ]]; then
    log "ACME_EMAIL not set: certificates from the cluster's own CA (k3s/cluster-ca-issuer.yaml)"
    kubectl apply -f "$K3S_DIR/cluster-ca-issuer.yaml"
    return
  fi
  [[ $ACME_EMAIL =~ ^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+$ ]] || die "ACME_EMAIL is not an e-mail address"
  local issuer="$K3S_DIR/cluster-issuer.yaml"
  if [[ -n ${DNS01_PROVIDER:-} ]]; then
    log "Let's Encrypt: the previews' wildcard by DNS-01 ($DNS01_PROVIDER), other hosts by HTTP-01"
    create_dns01_secret "$1"
    issuer="$K3S_DIR/cluster-issuer-cloudflare.yaml" # the one provider check_dns01_provider allows
  else
    log "DNS01_PROVIDER not set: the previews' wildcard certificate comes from the cluster's own CA" \
      "(k3s/previews-ca-certificate.yaml); the other hosts from Let's Encrypt by HTTP-01"
    kubectl apply -f "$K3S_DIR/cluster-ca-issuer.yaml"
    kubectl apply -f "$K3S_DIR/previews-ca-certificate.yaml"
  fi
  sed "s/ACME_EMAIL/$ACME_EMAIL/" "$issuer" | kubectl apply -f -
}

barman_cloud_plugin_url() {
  echo "https://github.com/cloudnative-pg/plugin-barman-cloud/releases/download/$PLUGIN_BARMAN_CLOUD_VERSION/manifest.yaml"
}

# The release manifest puts everything in cnpg-system, beside the operator, which finds the plugin
# by its Service's cnpg.io/pluginName label there. Its ObjectStore CRD, a self-signed Issuer and
# the two Certificates of the operator<->plugin mutual TLS need cert-manager (installed before);
# the plugin's pod mounts their Secrets, so it is Available only once cert-manager has issued them.
install_barman_cloud_plugin() {
  local work=$1
  log "CloudNativePG's Barman Cloud plugin $PLUGIN_BARMAN_CLOUD_VERSION (cnpg-system)"
  fetch_verified "$(barman_cloud_plugin_url)" "$work/plugin-barman-cloud.yaml" \
    PLUGIN_BARMAN_CLOUD_MANIFEST_SHA256
  kubectl apply --server-side --force-conflicts -f "$work/plugin-barman-cloud.yaml"
  kubectl wait --for=condition=Established --timeout=120s crd/objectstores.barmancloud.cnpg.io
  kubectl wait --namespace cnpg-system --for=condition=Available --timeout="$PLUGIN_READY_TIMEOUT" \
    deployment/barman-cloud ||
    die "the Barman Cloud plugin is not Available: kubectl -n cnpg-system describe deployment/barman-cloud; are its Certificates Ready (kubectl -n cnpg-system get certificates)?"
}

# The controller's manifests come from its pinned release; the Plan pins the K3s version.
install_upgrade_controller() {
  local work=$1 base
  base="https://github.com/rancher/system-upgrade-controller/releases/download/$SYSTEM_UPGRADE_CONTROLLER_VERSION"
  log "system-upgrade-controller $SYSTEM_UPGRADE_CONTROLLER_VERSION"
  fetch_verified "$base/crd.yaml" "$work/suc-crd.yaml" SYSTEM_UPGRADE_CONTROLLER_CRD_SHA256
  fetch_verified "$base/system-upgrade-controller.yaml" "$work/suc.yaml" \
    SYSTEM_UPGRADE_CONTROLLER_MANIFEST_SHA256
  kubectl apply -f "$work/suc-crd.yaml" -f "$work/suc.yaml"
  kubectl wait --for=condition=Established crd/plans.upgrade.cattle.io --timeout=120s
  kubectl apply -f "$K3S_DIR/upgrade-plan.yaml"
}

# Run when executed; only define the functions when sourced (tests).
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
