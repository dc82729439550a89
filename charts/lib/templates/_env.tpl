{{/*
Environment: plain settings come from the ConfigMap (values `config`); anything secret comes only
from references to Secrets that already exist in the namespace (values `secretEnv`). Values files
never hold a secret value.
*/}}
{{- define "lib.envFrom" -}}
{{- if .Values.config }}
envFrom:
  - configMapRef:
      name: {{ include "lib.name" . }}-config
{{- end }}
{{- with .Values.secretEnv }}
env:
  {{- range . }}
  - name: {{ .name }}
    valueFrom:
      secretKeyRef:
        name: {{ .secretName }}
        key: {{ .key }}
        {{- if .optional }}
        optional: true
        {{- end }}
  {{- end }}
{{- end }}
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
  {{ $key }}: {{ $value | toString | quote }}
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
