{{- define "redis.exporterEnv" -}}
- name: REDIS_ADDR
  value: redis://127.0.0.1:6379
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.passwordSecret.name }}
      key: {{ .Values.passwordSecret.key }}
{{- end -}}
