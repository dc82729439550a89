{{/*
Allows for one service. The namespace-wide default-deny comes from the platform chart; this
policy also selects the service's pods for both directions, so they are isolated even where the
platform chart is not installed. DNS egress is always allowed.
*/}}
{{- define "lib.dnsEgress" -}}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: kube-system
      podSelector:
        matchLabels:
          k8s-app: kube-dns
  ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
{{- end -}}

{{/* A migration reaches its database only: DNS and the egressTo entries of service postgres. */}}
{{/* With tracing.enabled: OTLP/HTTP to the trace store's pods (charts/observability). */}}
{{- define "lib.traceEgress" -}}
{{- with .Values.tracing }}
{{- if .enabled }}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ .namespace }}
      podSelector:
        matchLabels:
          app.kubernetes.io/name: {{ .service }}
  ports:
    - protocol: TCP
      port: {{ .port }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
The pods of an egressTo entry: its chart's pods; for postgres also the instances of its
CloudNativePG Cluster (charts/postgres engine: cloudnativepg), which the operator labels
cnpg.io/cluster=<cluster> and not with the chart's labels. Called with the entry.
*/}}
{{- define "lib.egressPeers" -}}
- podSelector:
    matchLabels:
      app.kubernetes.io/name: {{ .service }}
{{- if eq .service "postgres" }}
- podSelector:
    matchLabels:
      cnpg.io/cluster: {{ .service }}
{{- end }}
{{- end -}}

{{- define "lib.databaseEgressRules" -}}
{{- include "lib.dnsEgress" . }}
{{- range .Values.networkPolicy.egressTo }}
{{- if eq .service "postgres" }}
- to:
    {{- include "lib.egressPeers" . | nindent 4 }}
  ports:
    - protocol: TCP
      port: {{ .port }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "lib.egressRules" -}}
{{- $np := .Values.networkPolicy -}}
{{- include "lib.dnsEgress" . }}
{{- include "lib.traceEgress" . }}
{{- range $np.egressTo }}
- to:
    {{- include "lib.egressPeers" . | nindent 4 }}
  ports:
    - protocol: TCP
      port: {{ .port }}
{{- end }}
{{- if $np.internetEgress }}
- to:
    - ipBlock:
        cidr: 0.0.0.0/0
        except: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 169.254.0.0/16]
  ports:
    - protocol: TCP
      port: 443
{{- end }}
{{- end -}}

{{- define "lib.networkPolicy" -}}
{{- $v := .Values -}}
{{- $np := $v.networkPolicy -}}
{{- if $np.enabled }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "lib.name" . }}
  labels:
    {{- include "lib.labels" . | nindent 4 }}
spec:
  # The service's pods, not its migration Job's (lib.migrationJob gives those their own policy):
  # policies add up, so one selecting both would hand the Job every egress of the service.
  podSelector:
    matchLabels:
      app.kubernetes.io/name: {{ include "lib.name" . }}
    matchExpressions:
      - {key: app.kubernetes.io/component, operator: NotIn, values: [migrate]}
  policyTypes: [Ingress, Egress]
  {{- if or $v.httpRoute.enabled $np.allowFrom $v.metrics.enabled }}
  ingress:
    {{- if $v.httpRoute.enabled }}
    # The gateway's NGINX pods (NGF labels them with their Gateway's name).
    - from:
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: {{ $v.httpRoute.gateway.namespace }}
          podSelector:
            matchLabels:
              gateway.networking.k8s.io/gateway-name: {{ $v.httpRoute.gateway.name }}
      ports:
        - protocol: TCP
          port: {{ $v.port }}
    {{- end }}
    {{- with $np.allowFrom }}
    - from:
        {{- range . }}
        - podSelector:
            matchLabels:
              app.kubernetes.io/name: {{ . }}
        {{- end }}
      ports:
        - protocol: TCP
          port: {{ $v.port }}
    {{- end }}
    {{- if $v.metrics.enabled }}
    # Prometheus's scrape of /metrics (lib.serviceMonitor).
    {{- include "lib.prometheusIngress" (dict "root" . "port" $v.port) | nindent 4 }}
    {{- end }}
  {{- else }}
  ingress: []
  {{- end }}
  egress:
    {{- include "lib.egressRules" . | nindent 4 }}
{{- end }}
{{- end -}}
