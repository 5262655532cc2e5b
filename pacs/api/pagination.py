"""Pagination of every console list [STU-4]: page sizes 15 (default), 30, 50 and 100."""

from __future__ import annotations

from django.conf import settings
from rest_framework import pagination
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

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

    def get_paginated_response(self, data) -> Response:
        """DRF's page plus what first/previous/next/last controls need [STU-4]."""
        return Response(
            {
                "count": self.page.paginator.count,
                "page": self.page.number,
                "page_size": self.page.paginator.per_page,
                "total_pages": self.page.paginator.num_pages,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
                "results": data,
            }
        )

    def get_paginated_response_schema(self, schema: dict) -> dict:
        base = super().get_paginated_response_schema(schema)
        base["required"] = ["count", "page", "page_size", "total_pages", "results"]
        for name, example in (("page", 2), ("page_size", 15), ("total_pages", 9)):
            base["properties"][name] = {"type": "integer", "example": example}
        return base

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_query_param:
                parameter["schema"] = {"type": "string"}
                parameter["description"] = "Page number (from 1), or 'last'."
            elif parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "enum": list(PAGE_SIZE_CHOICES)}
        return parameters
