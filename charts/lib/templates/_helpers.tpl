{{/*
Names and labels. Objects are named after the service (the chart name, or nameOverride), not the
release, so that DNS names like http://auth:8000 are the same in every environment.
*/}}
{{- define "lib.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lib.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lib.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "lib.labels" -}}
{{ include "lib.selectorLabels" . }}
app.kubernetes.io/part-of: chat-platform
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ include "lib.versionLabel" .Values.image.tag | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/*
The image tag as a label value. A tag may be 128 characters and start or end with "_", "." or "-";
a label value is at most 63 characters and starts and ends with a letter or digit. Cut to 63, then
drop what may not stand at either end (a tag of only such characters yields an empty value).
*/}}
{{- define "lib.versionLabel" -}}
{{- regexReplaceAll "^[^A-Za-z0-9]+|[^A-Za-z0-9]+$" (. | toString | trunc 63) "" -}}
{{- end -}}

{{/* Labels of one process (the web server is "web", workers carry their own name). */}}
{{- define "lib.componentSelectorLabels" -}}
{{ include "lib.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
Image reference: repository:tag, or repository@digest when a digest is set (the digest wins,
because only a digest is immutable).
*/}}
{{- define "lib.image" -}}
{{- $img := .Values.image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (required "image.tag or image.digest is required" $img.tag) -}}
{{- end -}}
{{- end -}}

{{- define "lib.serviceAccountName" -}}
{{- include "lib.name" . -}}
{{- end -}}

{{/*
The pod's PriorityClass (k3s/cluster-policies.yaml): production and the platform above staging,
previews lowest and never preempting. Empty: the cluster default (dev, integration).
*/}}
{{- define "lib.priorityClassName" -}}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end -}}
