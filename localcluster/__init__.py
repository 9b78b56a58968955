"""A real Kubernetes control plane on one machine, for pgshift's e2e tests and demo.

etcd, kube-apiserver and kube-controller-manager run as local processes on loopback ports, and
an agent plays kubelet: it registers a Node and runs Pods as local processes in private mount
namespaces. Not part of the shipped ``pgshift`` package; see docs/localcluster.md.
"""
