{{/* The chart's name, or nameOverride. */}}
{{- define "alb-sg-monitor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Object names: the release name when it already contains the chart's name, so that
`helm install alb-sg-monitor` names everything alb-sg-monitor, as the kustomize base does. */}}
{{- define "alb-sg-monitor.fullname" -}}
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

{{- define "alb-sg-monitor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "alb-sg-monitor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: monitor
{{- end }}

{{- define "alb-sg-monitor.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "alb-sg-monitor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: alb-sg-monitor
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "alb-sg-monitor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "alb-sg-monitor.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The port of `listen` (host:port, [::]:port). */}}
{{- define "alb-sg-monitor.port" -}}
{{- $port := splitList ":" (toString .Values.listen) | last }}
{{- if not (regexMatch "^[0-9]+$" $port) }}
{{- fail (printf "listen: %q is not host:port, e.g. 0.0.0.0:9917" (toString .Values.listen)) }}
{{- end }}
{{- $port }}
{{- end }}

{{/* The monitor's configuration as its flags' ALBSG_* environment twins; unset values are left
out so that the code's own default applies. `mode` is not here: it is a container argument.
A new flag of `run` needs its value in values.yaml and values.schema.json and its line here;
tests/deploy/test_helm.py fails until all three are there. */}}
{{/* Fails unless the duration .value (already of the right form: values.schema.json) lasts at
least .least seconds, the minimum `alb-sg-monitor run` holds it to (MINIMUMS in monitor/cli.py). A
sum of parts (1m30s, 500ms500ms), which no schema pattern can compare. */}}
{{- define "alb-sg-monitor.atLeast" -}}
{{- $units := dict "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 }}
{{- $seconds := 0.0 }}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ms|s|m|h)" (trim (toString .value)) -1 }}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" . | float64 }}
{{- $seconds = addf $seconds (mulf $number (get $units (regexReplaceAll "^[0-9.]+" . ""))) }}
{{- end }}
{{- if lt $seconds .least }}
{{- fail (printf "%s: %q is too short for run: at least %s" .name (toString .value) .shown) }}
{{- end }}
{{- end }}

{{- define "alb-sg-monitor.config" -}}
{{- include "alb-sg-monitor.atLeast" (dict "name" "interval" "value" .Values.interval "least" 1.0 "shown" "1s") }}
{{- include "alb-sg-monitor.atLeast" (dict "name" "topologyInterval" "value" .Values.topologyInterval "least" 60.0 "shown" "1m") }}
{{- with .Values.cycleTimeout }}
{{- include "alb-sg-monitor.atLeast" (dict "name" "cycleTimeout" "value" . "least" 1.0 "shown" "1s") }}
{{- end }}
ALBSG_CLUSTER_NAME: {{ required "clusterName is required: the EKS cluster name, as in the kubernetes.io/cluster/<name> tag (--set clusterName=NAME)" .Values.clusterName | quote }}
{{- with .Values.region }}
ALBSG_REGION: {{ . | quote }}
{{- end }}
ALBSG_KUBERNETES: {{ .Values.kubernetes | quote }}
ALBSG_INTERVAL: {{ .Values.interval | quote }}
ALBSG_TOPOLOGY_INTERVAL: {{ .Values.topologyInterval | quote }}
ALBSG_HEALTH_SWEEP: {{ .Values.healthSweep | quote }}
ALBSG_DISCOVERY_RATE: {{ .Values.discoveryRate | quote }}
{{- with .Values.cycleTimeout }}
ALBSG_CYCLE_TIMEOUT: {{ . | quote }}
{{- end }}
ALBSG_GRACE: {{ .Values.grace | quote }}
ALBSG_LISTEN: {{ .Values.listen | quote }}
{{- with .Values.stateFile }}
ALBSG_STATE_FILE: {{ . | quote }}
{{- end }}
{{- with .Values.eventsQueue }}
ALBSG_EVENTS_QUEUE: {{ . | quote }}
{{- end }}
{{- with .Values.v2ControllerRoleArn }}
ALBSG_V2_CONTROLLER_ROLE_ARN: {{ . | quote }}
{{- end }}
{{- with .Values.v1ControllerRoleArn }}
ALBSG_V1_CONTROLLER_ROLE_ARN: {{ . | quote }}
{{- end }}
ALBSG_MAX_RESTORES_PER_CYCLE: {{ .Values.maxRestoresPerCycle | quote }}
ALBSG_MAX_RESTORES_PER_HOUR: {{ .Values.maxRestoresPerHour | quote }}
ALBSG_FIGHT_THRESHOLD: {{ .Values.fightThreshold | quote }}
ALBSG_FIGHT_WINDOW: {{ .Values.fightWindow | quote }}
ALBSG_RESTORE_BACKOFF: {{ .Values.restoreBackoff | quote }}
ALBSG_RESTORE_BACKOFF_MAX: {{ .Values.restoreBackoffMax | quote }}
ALBSG_CLEANUP_GRACE: {{ .Values.cleanupGrace | quote }}
ALBSG_LOG_FORMAT: {{ .Values.logFormat | quote }}
{{- end }}
