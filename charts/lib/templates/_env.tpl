{{/*
Environment: plain settings come from the ConfigMap (values `config`); anything secret comes only
from references to Secrets that already exist in the namespace (values `secretEnv`). Values files
never hold a secret value. An `optional` reference with `requiredWhen: <CONFIG_KEY>` becomes
required when `config` sets that key to "true" (REDIS_PASSWORD with Sentinel, REDIS_AUTH_REQUIRED):
the service reads the same flag and refuses to start without the value, and the kubelet refuses
to start a pod whose Secret lacks the key.
*/}}
{{- define "lib.envFrom" -}}
{{- if .Values.config }}
envFrom:
  - configMapRef:
      name: {{ include "lib.name" . }}-config
{{- end }}
{{- $tracing := include "lib.traceStoreEndpoint" . }}
{{- if or .Values.secretEnv $tracing }}
env:
  {{- range .Values.secretEnv }}
  - name: {{ .name }}
    valueFrom:
      secretKeyRef:
        name: {{ .secretName }}
        key: {{ .key }}
        {{- $required := and .requiredWhen (get ($.Values.config | default dict) .requiredWhen) }}
        {{- if and .optional (ne (toString $required) "true") }}
        optional: true
        {{- end }}
  {{- end }}
  {{- with $tracing }}
  # Spans go over OTLP/HTTP to the cluster's trace store (charts/observability); unset, the
  # services export nothing.
  - name: OTEL_EXPORTER_OTLP_ENDPOINT
    value: {{ . | quote }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* The trace store's OTLP/HTTP base URL when tracing.enabled, else empty. */}}
{{- define "lib.traceStoreEndpoint" -}}
{{- with .Values.tracing }}
{{- if .enabled }}
{{- printf "http://%s.%s.svc:%d" .service .namespace (int .port) }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
One `config` value as a quoted string. Helm reads every number of a values file as a float64, and
toString prints 10485760 as "1.048576e+07", which no integer setting parses; the schema admits
integers only, so a float64 here is a whole number and prints as one.
*/}}
{{- define "lib.configValue" -}}
{{- if kindIs "float64" . }}{{ int64 . | toString | quote }}{{ else }}{{ . | toString | quote }}{{ end }}
{{- end -}}

{{- define "lib.configMap" -}}
{{- if .Values.config }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "lib.name" . }}-config
  labels:
    {{- include "lib.labels" . | nindent 4 }}
data:
  {{- range $key, $value := .Values.config }}
  {{ $key }}: {{ include "lib.configValue" $value }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* Secret files (e.g. signing keys) mounted read-only from existing Secrets. */}}
{{- define "lib.secretVolumeMounts" -}}
{{- range .Values.secretFiles }}
- name: secret-{{ .name }}
  mountPath: {{ .mountPath }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "lib.secretVolumes" -}}
{{- range .Values.secretFiles }}
- name: secret-{{ .name }}
  secret:
    secretName: {{ .secretName }}
    defaultMode: 0440
{{- end }}
{{- end -}}
