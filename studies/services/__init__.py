"""Writes to the index: ingest (the one path that adds instances) and deletion."""

from studies.services.deletion import (
    delete_series,
    delete_studies,
    refresh_counts_after_storage_removal,
)
from studies.services.ingest import (
    Origin,
    Outcome,
    StoreResult,
    store_instance,
    store_stream,
)

__all__ = [
    "Origin",
    "Outcome",
    "StoreResult",
    "delete_series",
    "delete_studies",
    "refresh_counts_after_storage_removal",
    "store_instance",
    "store_stream",
]
