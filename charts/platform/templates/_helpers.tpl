{{- define "platform.generatedSecretLabels" -}}
app.kubernetes.io/part-of: chat-platform
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: generated-secrets
{{- end -}}
