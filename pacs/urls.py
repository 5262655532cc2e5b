"""URL map of the web process: the REST API under /api/ and its OpenAPI schema."""

from django.urls import path

urlpatterns: list = []
