{{/* Names shared by every object of a release. */}}
{{- define "vllm-rs.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "vllm-rs.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "vllm-rs.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vllm-rs.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "vllm-rs.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{ include "vllm-rs.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The Secret holding the API key, if any. */}}
{{- define "vllm-rs.apiKeySecret" -}}
{{- if .Values.apiKey.existingSecret -}}
{{- .Values.apiKey.existingSecret -}}
{{- else if .Values.apiKey.value -}}
{{- printf "%s-api-key" (include "vllm-rs.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The model-cache claim, if any. */}}
{{- define "vllm-rs.cacheClaim" -}}
{{- if .Values.modelCache.existingClaim -}}
{{- .Values.modelCache.existingClaim -}}
{{- else if .Values.modelCache.size -}}
{{- printf "%s-model-cache" (include "vllm-rs.fullname" .) -}}
{{- end -}}
{{- end -}}
