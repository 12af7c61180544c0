{{/* The chart's name. */}}
{{- define "apiservice-guard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the chart's name alone when the release is named after it. */}}
{{- define "apiservice-guard.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Names of what the guard finds by name. */}}
{{- define "apiservice-guard.serviceName" -}}{{ include "apiservice-guard.fullname" . }}-webhook{{- end }}
{{- define "apiservice-guard.secretName" -}}{{ include "apiservice-guard.fullname" . }}-certs{{- end }}
{{- define "apiservice-guard.certManagerSecretName" -}}{{ include "apiservice-guard.fullname" . }}-tls{{- end }}
{{- define "apiservice-guard.configName" -}}{{ include "apiservice-guard.fullname" . }}-config{{- end }}

{{/* Selector labels. */}}
{{- define "apiservice-guard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "apiservice-guard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Common labels. */}}
{{- define "apiservice-guard.labels" -}}
{{ include "apiservice-guard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* The webhooks' failurePolicy: as set, else Fail with two replicas or more. */}}
{{- define "apiservice-guard.failurePolicy" -}}
{{- if .Values.webhook.failurePolicy }}
{{- if not (has .Values.webhook.failurePolicy (list "Fail" "Ignore")) }}
{{- fail (printf "webhook.failurePolicy %q: want Fail or Ignore" .Values.webhook.failurePolicy) }}
{{- end }}
{{- .Values.webhook.failurePolicy }}
{{- else if ge (int .Values.replicaCount) 2 }}Fail
{{- else }}Ignore
{{- end }}
{{- end }}

{{/* A webhook's clientConfig: the guard's Service at path. */}}
{{- define "apiservice-guard.clientConfig" -}}
clientConfig:
  service:
    name: {{ include "apiservice-guard.serviceName" .root }}
    namespace: {{ .root.Release.Namespace }}
    path: {{ .path }}
    port: 443
{{- end }}

{{/* Annotations of the webhook configurations. */}}
{{- define "apiservice-guard.webhookAnnotations" -}}
# AKS's admissions enforcer would rewrite the namespaceSelectors otherwise.
admissions.enforcer/disabled: "true"
{{- if .Values.certManager.enabled }}
cert-manager.io/inject-ca-from: {{ .Release.Namespace }}/{{ include "apiservice-guard.fullname" . }}-webhook
{{- end }}
{{- with .Values.webhook.annotations }}
{{ toYaml . }}
{{- end }}
{{- end }}
