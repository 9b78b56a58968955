"""The agent that plays kubelet: a Node, Pods run as local processes, logs, host-folder PVs."""
