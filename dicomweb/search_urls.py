"""QIDO-RS and STOW-RS routes (PS3.18 10.6, 10.5).

``/studies`` and ``/studies/{study}`` are shared with WADO-RS: GET searches or retrieves,
POST stores. ``/studies/{study}`` is routed here and hands every method but POST to the
retrieve route of the same path (:mod:`dicomweb.retrieve_urls`)."""

from __future__ import annotations

from django.http import HttpResponse, JsonResponse
from django.urls import re_path
from django.views.decorators.csrf import csrf_exempt

from dicomweb import qido, stow
from dicomweb.access import DicomwebView, MayFind, MayUpload

_UID = r"(?P<{}>[^/]+)"
_STUDY = _UID.format("study")
_SERIES = _UID.format("series")


class StudiesView(DicomwebView):
    """``/studies``: GET is the QIDO-RS study search (needs FIND), POST is STOW-RS (needs
    UPLOAD)."""

    def get_permissions(self):
        return [MayUpload() if self.request.method == "POST" else MayFind()]

    def get(self, request) -> HttpResponse:
        return qido.search(request, qido.STUDIES)

    def post(self, request) -> HttpResponse:
        return stow.store(request)


_stow_into_study = stow.StowView.as_view()


@csrf_exempt  # the DRF views behind it check CSRF for session logins themselves
def study_resource(request, study: str) -> HttpResponse:
    """``/studies/{study}``: POST stores into the study; anything else is retrieval."""
    if request.method == "POST":
        return _stow_into_study(request, study=study)
    from dicomweb.retrieve_urls import urlpatterns as retrieve_urlpatterns

    for pattern in retrieve_urlpatterns:
        match = pattern.resolve(f"studies/{study}")
        if match is not None:
            return match.func(request, *match.args, **match.kwargs)
    return JsonResponse({"message": "Method not allowed.", "errors": {}}, status=405)


urlpatterns = [
    re_path(r"^studies/?$", StudiesView.as_view(), name="dicomweb-studies"),
    re_path(rf"^studies/{_STUDY}/?$", study_resource, name="dicomweb-study"),
    re_path(
        rf"^studies/{_STUDY}/series/?$",
        qido.StudySeriesView.as_view(),
        name="dicomweb-qido-study-series",
    ),
    re_path(r"^series/?$", qido.AllSeriesView.as_view(), name="dicomweb-qido-series"),
    re_path(
        rf"^studies/{_STUDY}/series/{_SERIES}/instances/?$",
        qido.SeriesInstancesView.as_view(),
        name="dicomweb-qido-series-instances",
    ),
    re_path(
        rf"^studies/{_STUDY}/instances/?$",
        qido.StudyInstancesView.as_view(),
        name="dicomweb-qido-study-instances",
    ),
    re_path(r"^instances/?$", qido.AllInstancesView.as_view(), name="dicomweb-qido-instances"),
]
