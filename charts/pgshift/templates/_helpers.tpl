{{/* Names, labels and the RBAC rules shared by every template. */}}

{{- define "pgshift.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "pgshift.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "pgshift.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pgshift.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "pgshift.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "pgshift.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pgshift
{{- end -}}

{{- define "pgshift.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "pgshift.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The operator's image: repository@digest, else repository:tag (tag defaults to appVersion). */}}
{{- define "pgshift.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "pgshift.runnerImage" -}}
{{- default (include "pgshift.image" .) .Values.runner.image -}}
{{- end -}}

{{/* Namespaces that get a runner ServiceAccount. */}}
{{- define "pgshift.runnerNamespaces" -}}
{{- if .Values.watchNamespaces -}}
{{- join "," .Values.watchNamespaces -}}
{{- else -}}
{{- join "," .Values.runner.serviceAccount.namespaces -}}
{{- end -}}
{{- end -}}

{{/*
The operator's namespaced permissions: the same rules in the ClusterRole (all namespaces) or in
one Role per watched namespace. docs/rbac.md says why each one is needed; the calls are in
operator/pgshift/controller/kube.py (and kopf's own). No Secrets: Jobs get
the database URL through secretKeyRef, which the kubelet resolves, not the operator.
*/}}
{{- define "pgshift.namespacedRules" -}}
# The Migration resources: kopf watches them and patches its progress annotations on them.
- apiGroups: ["pgshift.dev"]
  resources: ["migrations"]
  verbs: ["get", "list", "watch", "patch"]
# Status and conditions.
- apiGroups: ["pgshift.dev"]
  resources: ["migrations/status"]
  verbs: ["patch"]
# Every database action is a Job: create it and follow it (never updated or deleted: a retry is
# a new Job; owner references let the garbage collector remove them with the Migration).
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["list", "watch", "create"]
# Job Pods: the runner's termination message (its summary) and waiting reasons.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
# A running apply Job's log tail: its backfill progress (rows, rate, time left), read at most
# every 10 s and only while a backfill step runs or is ahead.
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
# Migration sources (ConfigMaps of SQL files): their digest, and a re-plan on an edit in place.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch"]
# Rollout gates (spec.contract.after: Rollout) read the named Deployments (polled, not
# watched), their ReplicaSets (which pod templates exist) and Pods (none of an old one left).
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get"]
- apiGroups: ["apps"]
  resources: ["replicasets"]
  verbs: ["list"]
# An Event for every step.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

{{/*
The runner ServiceAccount Jobs use by default: the chart's runner ServiceAccount where the chart
creates it (or where you said you manage it: create=false), else "" (the namespace's default
ServiceAccount; Job Pods never mount its token).
*/}}
{{- define "pgshift.runnerServiceAccount" -}}
{{- if not .Values.runner.serviceAccount.create -}}
{{- .Values.runner.serviceAccount.name -}}
{{- else if include "pgshift.runnerNamespaces" . -}}
{{- .Values.runner.serviceAccount.name -}}
{{- end -}}
{{- end -}}
