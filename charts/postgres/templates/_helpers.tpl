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
  value: {{ .Values.metrics.exporter.role }}
- name: DATA_SOURCE_PASS
  valueFrom:
    secretKeyRef:
      name: {{ .Values.metrics.exporter.passwordSecret.name }}
      key: {{ .Values.metrics.exporter.passwordSecret.key }}
{{- end -}}

{{/* With metrics: ensure-databases.sh also makes the exporter's pg_monitor role. */}}
{{- define "postgres.monitoringEnv" -}}
{{- if .Values.metrics.enabled }}
- name: MONITORING_ROLE
  value: {{ .Values.metrics.exporter.role }}
- name: MONITORING_PASSWORD_FILE
  value: /etc/postgres-exporter/password
{{- end }}
{{- end -}}

{{- define "postgres.monitoringMount" -}}
{{- if .Values.metrics.enabled }}
- name: exporter-password
  mountPath: /etc/postgres-exporter
  readOnly: true
{{- end }}
{{- end -}}

{{- define "postgres.monitoringVolume" -}}
{{- if .Values.metrics.enabled }}
- name: exporter-password
  secret:
    secretName: {{ .Values.metrics.exporter.passwordSecret.name }}
    defaultMode: 0440
    items:
      - key: {{ .Values.metrics.exporter.passwordSecret.key }}
        path: password
{{- end }}
{{- end -}}
