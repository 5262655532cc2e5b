"""WADO-RS and WADO-URI routes (PS3.18 10.4, 9)."""

from django.urls import path

from dicomweb import retrieve_views as views
from dicomweb.wado_uri import WadoUriView

STUDY = "studies/<str:study>"
SERIES = f"{STUDY}/series/<str:series>"
INSTANCE = f"{SERIES}/instances/<str:instance>"
FRAMES = f"{INSTANCE}/frames/<str:frames>"

urlpatterns = [
    path(STUDY, views.InstancesView.as_view(), name="wado-study"),
    path(SERIES, views.InstancesView.as_view(), name="wado-series"),
    path(INSTANCE, views.InstancesView.as_view(), name="wado-instance"),
    path(f"{STUDY}/metadata", views.MetadataView.as_view(), name="wado-study-metadata"),
    path(f"{SERIES}/metadata", views.MetadataView.as_view(), name="wado-series-metadata"),
    path(f"{INSTANCE}/metadata", views.MetadataView.as_view(), name="wado-instance-metadata"),
    path(FRAMES, views.FramesView.as_view(), name="wado-frames"),
    path(f"{INSTANCE}/bulkdata/<path:tag_path>", views.BulkdataView.as_view(), name="wado-bulk"),
    path(f"{STUDY}/rendered", views.RenderedView.as_view(), name="wado-study-rendered"),
    path(f"{SERIES}/rendered", views.RenderedView.as_view(), name="wado-series-rendered"),
    path(f"{INSTANCE}/rendered", views.RenderedView.as_view(), name="wado-instance-rendered"),
    path(f"{FRAMES}/rendered", views.RenderedView.as_view(), name="wado-frames-rendered"),
    path(f"{STUDY}/thumbnail", views.ThumbnailView.as_view(), name="wado-study-thumbnail"),
    path(f"{SERIES}/thumbnail", views.ThumbnailView.as_view(), name="wado-series-thumbnail"),
    path(f"{INSTANCE}/thumbnail", views.ThumbnailView.as_view(), name="wado-instance-thumbnail"),
    path(f"{FRAMES}/thumbnail", views.ThumbnailView.as_view(), name="wado-frames-thumbnail"),
    path("wado", WadoUriView.as_view(), name="wado-uri"),
]
