"""WADO-URI (PS3.18 9): ``/dicomweb/wado?requestType=WADO&studyUID=..&seriesUID=..&
objectUID=..`` answers one instance as ``application/dicom`` (``transferSyntax``, default
Explicit VR Little Endian, PS3.18 9.1.2.5.1; ``*`` for as stored) or as a rendered
``image/jpeg`` / ``image/png`` (``frameNumber``, ``windowCenter`` / ``windowWidth``, ``rows``
/ ``columns``, ``imageQuality``). The default content type is image/jpeg for images and
application/dicom for other objects (PS3.18 9.1.2.1.3)."""

from __future__ import annotations

from django.http import FileResponse, HttpResponse
from rest_framework import exceptions
from rest_framework.request import Request

from dicomweb import wado
from dicomweb.access import DicomwebView, MayDownload
from dicomweb.retrieve_views import render
from studies import rendering
from studies.rendering import transcoded_copy
from studies.services.ingest import temp_folder
from studies.transcoding import EXPLICIT_VR_LITTLE_ENDIAN, TranscodeError

_REQUIRED = ("studyUID", "seriesUID", "objectUID")


def _invalid(parameter: str, message: str) -> exceptions.ValidationError:
    return exceptions.ValidationError({parameter: [message]})


def _content_type(params, instance: wado.StoredInstance) -> str:
    """The first supported type of the ``contentType`` list (PS3.18 9.1.2.1.3)."""
    if "contentType" not in params:
        return rendering.JPEG if instance.rows else wado.DICOM
    for item in params["contentType"].split(","):
        media_type = item.split(";")[0].strip().lower()
        if media_type in (wado.DICOM, *rendering.MEDIA_TYPES):
            return media_type
        if media_type in ("*/*", "image/*"):
            return rendering.JPEG if instance.rows else wado.DICOM
    raise wado.not_acceptable(
        "contentType must include application/dicom, image/jpeg or image/png."
    )


def _dicom_response(instance: wado.StoredInstance, params) -> FileResponse:
    requested = params.get("transferSyntax", EXPLICIT_VR_LITTLE_ENDIAN).strip()
    syntax = wado.choose_syntax(instance.transfer_syntax_uid, [requested])
    if syntax is None:
        raise wado.not_acceptable(
            f"The instance is stored in {instance.transfer_syntax_uid} and cannot be "
            f"converted to {requested}; transferSyntax=* sends it as stored."
        )
    path = instance.path
    if syntax != instance.transfer_syntax_uid:
        try:
            path = transcoded_copy(path, syntax, temp_folder())
        except TranscodeError as exc:
            raise exceptions.APIException(f"The instance cannot be converted: {exc}") from exc
        handle = path.open("rb")
        path.unlink()  # the open handle keeps the data until the response is sent
    else:
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise exceptions.NotFound("The file of this instance is missing.") from exc
    response = FileResponse(handle, content_type=f"{wado.DICOM}; transfer-syntax={syntax}")
    response["Content-Disposition"] = f'attachment; filename="{instance.sop_instance_uid}.dcm"'
    return response


def _image_options(params, media_type: str) -> rendering.RenderOptions:
    """windowCenter/windowWidth (both or neither), rows/columns as the viewport,
    imageQuality (PS3.18 9.1.2.3.x)."""
    try:
        window = None
        if ("windowCenter" in params) != ("windowWidth" in params):
            raise rendering.BadRenderParameter(
                "windowCenter", "windowCenter and windowWidth go together."
            )
        if "windowCenter" in params:
            window = rendering.parse_window(f"{params['windowCenter']},{params['windowWidth']}")
        viewport = None
        if "rows" in params or "columns" in params:
            rows = params.get("rows", str(rendering.MAX_VIEWPORT))
            columns = params.get("columns", str(rendering.MAX_VIEWPORT))
            viewport = rendering.parse_viewport(f"{columns},{rows}")
        quality = rendering.DEFAULT_QUALITY
        if "imageQuality" in params:
            quality = rendering.parse_quality(params["imageQuality"])
    except rendering.BadRenderParameter as exc:
        raise _invalid(exc.parameter, str(exc)) from exc
    return rendering.RenderOptions(media_type, window, viewport, quality)


class WadoUriView(DicomwebView):
    permission_classes = [MayDownload]

    def get(self, request: Request) -> HttpResponse:
        params = request.query_params
        if params.get("requestType") != "WADO":
            raise _invalid("requestType", "requestType must be WADO.")
        missing = [name for name in _REQUIRED if not params.get(name)]
        if missing:
            raise _invalid(missing[0], f"{missing[0]} is required.")
        instance = wado.select_instances(
            params["studyUID"], params["seriesUID"], params["objectUID"]
        )[0]
        media_type = _content_type(params, instance)
        if media_type == wado.DICOM:
            return _dicom_response(instance, params)
        options = _image_options(params, media_type)
        frame_number = 1
        if "frameNumber" in params:
            frame_number = wado.parse_frame_list(params["frameNumber"])[0]
        return HttpResponse(render(instance, frame_number, options), content_type=media_type)
