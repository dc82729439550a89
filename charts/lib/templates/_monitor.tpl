{{/*
Metrics. With metrics.enabled, a ServiceMonitor (Prometheus Operator, installed with
kube-prometheus-stack by k3s/bootstrap.sh) scrapes the Service's `http` port at metrics.path, and
lib.networkPolicy lets exactly the Prometheus pods of metrics.prometheus reach that port. The
scrape's `job` label is the Service's name, which the alert rules group by
(charts/observability/rules). Off where no Prometheus Operator runs (ci, dev, previews).
*/}}
{{- define "lib.serviceMonitor" -}}
{{- $m := .Values.metrics -}}
{{- if $m.enabled }}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "lib.name" . }}
  labels:
    {{- include "lib.labels" . | nindent 4 }}
spec:
  selector:
    matchLabels:
      {{- include "lib.selectorLabels" . | nindent 6 }}
  namespaceSelector:
    matchNames: [{{ .Release.Namespace }}]
  endpoints:
    - port: {{ $m.portName | default "http" }}
      path: {{ $m.path }}
      interval: {{ $m.interval }}
      scrapeTimeout: {{ $m.scrapeTimeout }}
{{- end }}
{{- end -}}

{{/* The NetworkPolicy ingress rule for the scrape: Prometheus's pods, only to `port`. */}}
{{- define "lib.prometheusIngress" -}}
{{- $p := .root.Values.metrics.prometheus -}}
- from:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ $p.namespace }}
      podSelector:
        matchLabels:
          {{- toYaml $p.podLabels | nindent 10 }}
  ports:
    - protocol: TCP
      port: {{ .port }}
{{- end -}}

{{/*
An exporter sidecar beside a data store (postgres, redis): metrics.exporter's image on
metrics.exporter.port (named `metrics`), probed on its own HTTP endpoint, restricted like every
container. Call with (dict "root" . "env" <list of env entries>).
*/}}
{{- define "lib.exporterContainer" -}}
{{- $e := .root.Values.metrics.exporter -}}
- name: metrics
  image: {{ (ternary (printf "%s@%s" $e.image.repository $e.image.digest) (printf "%s:%s" $e.image.repository $e.image.tag) (ne $e.image.digest "")) | quote }}
  imagePullPolicy: IfNotPresent
  ports:
    - name: metrics
      containerPort: {{ $e.port }}
  env:
    {{- toYaml .env | nindent 4 }}
  livenessProbe:
    httpGet: {path: {{ $e.probePath }}, port: metrics}
    periodSeconds: 30
    timeoutSeconds: 5
  readinessProbe:
    httpGet: {path: {{ $e.probePath }}, port: metrics}
    periodSeconds: 10
    timeoutSeconds: 5
  resources:
    {{- toYaml $e.resources | nindent 4 }}
  securityContext:
    {{- include "lib.containerSecurityContext" .root | nindent 4 }}
{{- end -}}
