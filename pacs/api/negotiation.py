"""Content negotiation for endpoints that answer with files (ZIP, DICOM)."""

from __future__ import annotations

from rest_framework.negotiation import BaseContentNegotiation


class IgnoreAcceptNegotiation(BaseContentNegotiation):
    """Use the first renderer whatever the Accept header says: the view returns a file
    itself, and errors still come out as JSON instead of a 406."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type
