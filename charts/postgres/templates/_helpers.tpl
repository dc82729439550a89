{{/* Database names: the service names with '_' for '-'. */}}
{{- define "postgres.databaseNames" -}}
{{- $names := list -}}
{{- range .Values.databases.services -}}
{{- $names = append $names (. | replace "-" "_") -}}
{{- end -}}
{{- join " " $names -}}
{{- end -}}

{{/* Connection settings for the hook Job and the backup CronJob (superuser over the Service). */}}
{{- define "postgres.clientEnv" -}}
- name: PGHOST
  value: {{ include "lib.name" . }}
- name: PGUSER
  value: postgres
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.superuserSecret.name }}
      key: {{ .Values.superuserSecret.key }}
{{- end -}}

{{- define "postgres.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end -}}

{{- define "postgres.exporterEnv" -}}
- name: DATA_SOURCE_URI
  value: 127.0.0.1:5432/postgres?sslmode=disable
- name: DATA_SOURCE_USER
  value: postgres
- name: DATA_SOURCE_PASS
  valueFrom:
    secretKeyRef:
      name: {{ .Values.superuserSecret.name }}
      key: {{ .Values.superuserSecret.key }}
{{- end -}}
