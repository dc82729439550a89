{{/*
Pod Security Standard "restricted": non-root numeric UID, no privilege escalation, every
capability dropped, the runtime's default seccomp profile, and a read-only root filesystem
(writable paths are emptyDirs, see lib.writableVolumes).
*/}}
{{- define "lib.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "lib.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "lib.writableVolumeName" -}}
{{- printf "writable-%s" (. | trimPrefix "/" | replace "/" "-" | replace "_" "-" | replace "." "-") | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lib.writableVolumeMounts" -}}
{{- range .Values.writablePaths }}
- name: {{ include "lib.writableVolumeName" . }}
  mountPath: {{ . }}
{{- end }}
{{- end -}}

{{- define "lib.writableVolumes" -}}
{{- range .Values.writablePaths }}
- name: {{ include "lib.writableVolumeName" . }}
  emptyDir:
    sizeLimit: 64Mi
{{- end }}
{{- end -}}
