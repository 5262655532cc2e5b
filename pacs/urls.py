"""URL map of the web process: the REST API under /api/, its OpenAPI schema and docs."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path
from django.views import defaults
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/", include("pacs.api.urls")),
    path("dicomweb/", include("dicomweb.urls")),
]


def handler404(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Unknown URLs under /api/ answer with the API's JSON error body [WEB-1]."""
    if request.path.startswith("/api/"):
        return JsonResponse({"message": "Not found.", "errors": {}}, status=404)
    return defaults.page_not_found(request, exception)


def handler500(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"message": "Internal server error.", "errors": {}}, status=500)
    return defaults.server_error(request)
