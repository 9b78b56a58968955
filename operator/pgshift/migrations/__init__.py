"""Migration model: read a source into ordered migrations. PURE: no network, no database."""

from pgshift.migrations.model import BREAKPOINT, Chunk, Layout, Migration, Source, TrackingForm
from pgshift.migrations.reader import configmap_problems, detect_layout, read_mapping, read_source

__all__ = [
    "BREAKPOINT",
    "Chunk",
    "Layout",
    "Migration",
    "Source",
    "TrackingForm",
    "configmap_problems",
    "detect_layout",
    "read_mapping",
    "read_source",
]
