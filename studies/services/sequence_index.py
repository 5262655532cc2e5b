"""Sequence attributes indexed as rows, one per item, so that sequence matching (PS3.4
C.2.2.2.6) and the sequence return keys read the index, never a file. The sequences and
their item attributes are :data:`studies.matching.SEQUENCE_KEYS`; ingest calls
:func:`index_sequences` when it creates a study or a series row (the header walk has read
the sequences already)."""

from __future__ import annotations

import logging

from django.db.models import Model
from pydicom.dataset import Dataset

from studies.matching import SEQUENCE_KEYS, Level

logger = logging.getLogger(__name__)

_MAX_ITEMS = 100  # a bound on what one header can add to the index


def index_sequences(level: Level, owner: Model, ds: Dataset) -> int:
    """Store the items of ``level``'s sequence keys found in ``ds`` for ``owner`` (the new
    study or series row); the number of items stored. An unreadable item is skipped: it
    never fails the store."""
    rows = []
    for key in SEQUENCE_KEYS.values():
        if key.level is not level or key.keyword not in ds:
            continue
        try:
            items = list(ds[key.keyword].value or [])[:_MAX_ITEMS]
        except Exception as exc:
            logger.debug("%s not indexed: %s", key.keyword, exc)
            continue
        for position, item in enumerate(items):
            try:
                values = {
                    item_key.column: _text(item, item_key.keyword, key.model, item_key.column)
                    for item_key in key.items
                }
            except Exception as exc:
                logger.debug("%s item %d not indexed: %s", key.keyword, position, exc)
                continue
            rows.append(key.model(**{key.owner: owner, "position": position, **values}))
    for model in {type(row) for row in rows}:
        model.objects.bulk_create([row for row in rows if type(row) is model])
    return len(rows)


def _text(item: Dataset, keyword: str, model: type, column: str) -> str:
    value = item.get(keyword, "")
    text = "" if value is None else str(value).strip()
    return text[: model._meta.get_field(column).max_length]
