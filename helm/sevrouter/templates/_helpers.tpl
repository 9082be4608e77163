{{/*
Names. A release called `sevrouter` (or anything containing it) is the name prefix as is.
*/}}
{{- define "sevrouter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sevrouter.fullname" -}}
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

{{- define "sevrouter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every resource. */}}
{{- define "sevrouter.labels" -}}
helm.sh/chart: {{ include "sevrouter.chart" . }}
{{ include "sevrouter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sevrouter
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "sevrouter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sevrouter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Selector labels of one component: call with (dict "root" $ "component" "receiver"). */}}
{{- define "sevrouter.componentSelectorLabels" -}}
{{ include "sevrouter.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "sevrouter.componentLabels" -}}
{{ include "sevrouter.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "sevrouter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sevrouter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sevrouter.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
The rule files the chart puts in its ConfigMap: the shipped ones (files/rules) unless
includeDefaults is false, then rules.files on top; an empty text removes a file.
*/}}
{{- define "sevrouter.ruleFiles" -}}
{{- $files := dict }}
{{- if .Values.rules.includeDefaults }}
{{- range $path, $_ := .Files.Glob "files/rules/*.yaml" }}
{{- $_ := set $files (base $path) ($.Files.Get $path) }}
{{- end }}
{{- end }}
{{- range $name, $text := .Values.rules.files }}
{{- if $text }}
{{- $_ := set $files $name $text }}
{{- else }}
{{- $_ := unset $files $name }}
{{- end }}
{{- end }}
{{- toYaml $files }}
{{- end }}

{{/*
The data of the chart's rules ConfigMap. Keys may not contain "/", so templates are stored as
`template.<name>` and mapped to `templates/<name>` by the volume's items.
*/}}
{{- define "sevrouter.rulesData" -}}
{{- $data := include "sevrouter.ruleFiles" . | fromYaml }}
{{- if not $data }}
{{- fail "rules: no rule files (rules.includeDefaults is false and rules.files is empty)" }}
{{- end }}
{{- range $name, $text := .Values.rules.templates }}
{{- $_ := set $data (printf "template.%s" $name) $text }}
{{- end }}
{{- toYaml $data }}
{{- end }}

{{- define "sevrouter.rulesConfigMapName" -}}
{{- default (printf "%s-rules" (include "sevrouter.fullname" .)) .Values.rules.existingConfigMap }}
{{- end }}

{{- define "sevrouter.secretName" -}}
{{- if .Values.existingSecret }}
{{- .Values.existingSecret }}
{{- else if .Values.secretEnv }}
{{- printf "%s-env" (include "sevrouter.fullname" .) }}
{{- end }}
{{- end }}

{{/*
REDIS_URL in the forms router/redisconn.py reads, with `$(REDIS_PASSWORD)` (expanded by
Kubernetes from the variable defined before it) when a password Secret is set, and
redis.options as the query string.
*/}}
{{- define "sevrouter.redisUrl" -}}
{{- $auth := "" }}
{{- if .Values.redis.auth.existingSecret }}
{{- $auth = ":$(REDIS_PASSWORD)@" }}
{{- end }}
{{- $query := list }}
{{- range $name, $value := .Values.redis.options }}
{{- $query = append $query (printf "%s=%v" $name $value) }}
{{- end }}
{{- $url := "" }}
{{- if .Values.redis.sentinel.enabled }}
{{- if not .Values.redis.sentinel.hosts }}
{{- fail "redis.sentinel.enabled needs redis.sentinel.hosts (host:port of each sentinel)" }}
{{- end }}
{{- if and $auth .Values.redis.sentinel.authenticate }}
{{- $query = prepend $query "sentinel_password=$(REDIS_PASSWORD)" }}
{{- end }}
{{- $url = printf "redis+sentinel://%s%s/%s/%d" $auth (join "," .Values.redis.sentinel.hosts) .Values.redis.sentinel.masterName (int .Values.redis.sentinel.db) }}
{{- else if .Values.redis.url }}
{{- $url = .Values.redis.url }}
{{- if and $auth (not (contains "@" $url)) }}
{{- $scheme := regexFind "^rediss?://" $url }}
{{- if not $scheme }}
{{- fail "redis.url must start with redis:// or rediss:// to have the password inserted" }}
{{- end }}
{{- $url = printf "%s%s%s" $scheme $auth (trimPrefix $scheme $url) }}
{{- end }}
{{- end }}
{{- if and $url $query }}
{{- $url = printf "%s%s%s" $url (ternary "&" "?" (contains "?" $url)) (join "&" $query) }}
{{- end }}
{{- $url }}
{{- end }}

{{/* Environment shared by receivers and workers. */}}
{{- define "sevrouter.env" -}}
{{- if .Values.redis.auth.existingSecret }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.auth.existingSecret }}
      key: {{ .Values.redis.auth.existingSecretPasswordKey }}
{{- end }}
{{- with include "sevrouter.redisUrl" . }}
- name: REDIS_URL
  value: {{ . | quote }}
{{- end }}
- name: SEVROUTER_RULES
  value: {{ .Values.rules.mountPath | quote }}
- name: SEVROUTER_LOG_LEVEL
  value: {{ .Values.config.logLevel | quote }}
- name: SEVROUTER_LOG_FORMAT
  value: {{ .Values.config.logFormat | quote }}
- name: SEVROUTER_KEY_PREFIX
  value: {{ .Values.config.keyPrefix | quote }}
- name: SEVROUTER_QUEUE
  value: {{ .Values.config.queue | quote }}
- name: SEVROUTER_MAX_BODY_BYTES
  value: {{ .Values.config.maxBodyBytes | int64 | quote }}
{{- with .Values.config.publicUrl }}
- name: SEVROUTER_PUBLIC_URL
  value: {{ . | quote }}
{{- end }}
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{- define "sevrouter.envFrom" -}}
{{- with include "sevrouter.secretName" . }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- with .Values.extraEnvFrom }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Pod annotations: the user's, plus checksums that roll the pods when chart-made config changes. */}}
{{- define "sevrouter.podAnnotations" -}}
{{- if and .Values.rules.rollOnChange (not .Values.rules.existingConfigMap) }}
checksum/rules: {{ include "sevrouter.rulesData" . | sha256sum }}
{{- end }}
{{- if and .Values.rules.rollOnChange (not .Values.existingSecret) .Values.secretEnv }}
checksum/secret: {{ toYaml .Values.secretEnv | sha256sum }}
{{- end }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Volumes shared by receivers and workers. */}}
{{- define "sevrouter.volumes" -}}
- name: rules
  configMap:
    name: {{ include "sevrouter.rulesConfigMapName" . }}
    {{- if .Values.rules.existingConfigMap }}
    {{- with .Values.rules.existingConfigMapItems }}
    items:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- else }}
    items:
      {{- range $name, $_ := include "sevrouter.ruleFiles" . | fromYaml }}
      - key: {{ $name }}
        path: {{ $name }}
      {{- end }}
      {{- range $name, $_ := .Values.rules.templates }}
      - key: template.{{ $name }}
        path: templates/{{ $name }}
      {{- end }}
    {{- end }}
- name: tmp
  emptyDir:
    medium: Memory
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "sevrouter.volumeMounts" -}}
- name: rules
  mountPath: {{ .Values.rules.mountPath }}
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* A soft spread over nodes: call with (dict "root" $ "component" "receiver" "values" .Values.receiver). */}}
{{- define "sevrouter.topologySpread" -}}
{{- if .values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml .values.topologySpreadConstraints | nindent 2 }}
{{- else if .values.spreadAcrossNodes }}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "sevrouter.componentSelectorLabels" (dict "root" .root "component" .component) | nindent 8 }}
{{- end }}
{{- end }}

{{/* Label matchers selecting this release's series in Prometheus. */}}
{{- define "sevrouter.metricSelector" -}}
namespace="{{ .Release.Namespace }}",job="{{ include "sevrouter.fullname" . }}"
{{- end }}
