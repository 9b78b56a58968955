"""PURE: two catalog snapshots compared into a list of drift a person can act on.

`snapshot.py` holds what a catalog is to the comparison (a flat map of objects: one key per
table, column, constraint, index, enum, sequence, function, view and extension, each with the
attributes that matter); `compare.py` turns two of them, a scope and an ignore list into
`Drift` items. The catalog is read elsewhere (`engine/catalog.py`): nothing here connects.
"""

from pgshift.schemadiff.compare import Drift, IgnoreList, changed_keys, compare
from pgshift.schemadiff.snapshot import Key, ObjectKind, Snapshot

__all__ = ["Drift", "IgnoreList", "Key", "ObjectKind", "Snapshot", "changed_keys", "compare"]
