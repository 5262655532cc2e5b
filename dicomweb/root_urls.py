"""URL map of the DICOMweb port [WEB-3]: the DICOMweb resources at the root, nothing else.
Selected per request by :class:`dicomweb.middleware.DicomwebPortMiddleware`."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path

urlpatterns = [path("", include("dicomweb.urls"))]


def handler404(request: HttpRequest, exception: Exception) -> HttpResponse:
    return JsonResponse({"message": "Not found.", "errors": {}}, status=404)


def handler500(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"message": "Internal server error.", "errors": {}}, status=500)
