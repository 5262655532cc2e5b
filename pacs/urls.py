"""URL map of the web process: the REST API under /api/ and its OpenAPI schema."""


urlpatterns: list = []
