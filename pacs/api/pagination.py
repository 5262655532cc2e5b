"""Pagination of every console list [STU-4]: page sizes 15 (default), 30, 50 and 100."""

from __future__ import annotations

from django.conf import settings
from rest_framework import pagination
from rest_framework.exceptions import ValidationError

PAGE_SIZE_CHOICES = (15, 30, 50, 100)


class PageNumberPagination(pagination.PageNumberPagination):
    """``?page=N&page_size=M``; ``page=last`` jumps to the last page."""

    page_size_query_param = "page_size"
    max_page_size = max(PAGE_SIZE_CHOICES)

    def get_page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return settings.PACS_PAGE_SIZE
        allowed = sorted({*PAGE_SIZE_CHOICES, settings.PACS_PAGE_SIZE})
        try:
            size = int(raw)
        except ValueError:
            size = -1
        if size not in allowed:
            raise ValidationError(
                {"page_size": [f"Choose one of {', '.join(str(s) for s in allowed)}."]}
            )
        return size
