"""The one error type of localcluster: the CLI prints its message on one line and exits 2."""


class LocalClusterError(RuntimeError):
    """Something the person can fix (a missing tool, a failed build, a cluster not up)."""
