"""WADO-RS views (PS3.18 10.4): thin adapters from the request to ``dicomweb.wado``,
``dicomweb.metadata`` and ``studies.rendering``. Every view needs DOWNLOAD [WADO-DEV];
errors are the API's JSON body (404 unknown UID, 406 nothing acceptable, 400 bad input)."""

from __future__ import annotations

from collections.abc import Iterator

from django.http import HttpResponse
from rest_framework import exceptions
from rest_framework.request import Request

from dicomweb import wado
from dicomweb.access import DicomwebView, MayDownload, absolute_url
from dicomweb.metadata import cached_documents, metadata_body
from dicomweb.multipart_response import Part, multipart_response
from studies import rendering
from studies.services.ingest import temp_folder

DICOM_JSON = "application/dicom+json"


def dicomweb_root(request: Request) -> str:
    """The absolute URL of the DICOMweb root this request came through (``/dicomweb/`` on
    the web port, ``/`` on the DICOMweb port), for BulkDataURIs."""
    path = request.path
    return absolute_url(request, path[: path.index("/studies/") + 1])


class _RetrieveView(DicomwebView):
    permission_classes = [MayDownload]


class InstancesView(_RetrieveView):
    """Study, series or instance as ``multipart/related; type="application/dicom"``."""

    def get(self, request: Request, study: str, series: str | None = None, instance=None):
        instances = wado.select_instances(study, series, instance)
        chosen = wado.negotiate_dicom(instances, request.headers.get("Accept", ""))
        return multipart_response(wado.dicom_parts(chosen), wado.DICOM)


class MetadataView(_RetrieveView):
    """Study, series or instance metadata as ``application/dicom+json`` (PS3.18 F.2)."""

    def get(self, request: Request, study: str, series: str | None = None, instance=None):
        accept = wado.parse_accept(request.headers.get("Accept", ""))
        if not any(r.accepts(DICOM_JSON) or r.media_type == "application/json" for r in accept):
            raise wado.not_acceptable("Metadata is available as application/dicom+json.")
        documents = cached_documents(wado.instances_of(study, series, instance))
        if not documents:
            raise wado.not_found(series, instance)
        return HttpResponse(
            metadata_body(documents, dicomweb_root(request)), content_type=DICOM_JSON
        )


def _one_instance(study: str, series: str, instance: str) -> wado.StoredInstance:
    return wado.select_instances(study, series, instance)[0]


class FramesView(_RetrieveView):
    """Frames of an instance (PS3.18 10.4.1.1.5): native ``application/octet-stream`` or a
    compressed image media type, one part per frame in the order asked."""

    def get(self, request: Request, study: str, series: str, instance: str, frames: str):
        numbers = wado.parse_frame_list(frames)
        stored = _one_instance(study, series, instance)
        choice = wado.negotiate_pixels(
            stored.transfer_syntax_uid, request.headers.get("Accept", "")
        )
        parts = wado.frame_parts(stored, numbers, choice)
        return multipart_response(parts, choice.media_type)


class BulkdataView(_RetrieveView):
    """The value of a BulkDataURI of our metadata (PS3.18 10.4.1.1.6): native pixel data and
    other values as one ``application/octet-stream`` part, encapsulated pixel data as one
    part per frame in its image media type."""

    def get(self, request: Request, study: str, series: str, instance: str, tag_path: str):
        path = wado.parse_bulkdata_path(tag_path)
        stored = _one_instance(study, series, instance)
        accept = request.headers.get("Accept", "")
        if len(path) == 1 and path[0] in wado.PIXEL_DATA_TAGS:
            choice = wado.negotiate_pixels(stored.transfer_syntax_uid, accept)
            return multipart_response(wado.pixel_data_parts(stored, choice), choice.media_type)
        if not wado.accepts_octet_stream(accept):
            raise wado.not_acceptable("Bulk data is available as application/octet-stream.")
        value = wado.bulkdata_value(stored, path)
        return multipart_response([Part(wado.OCTET_STREAM, data=value)], wado.OCTET_STREAM)


# --- Rendered and thumbnail (PS3.18 8.3.5, 10.4.1.1.3-4) ---------------------------------


def render_options(request: Request, *, thumbnail: bool = False) -> rendering.RenderOptions:
    """The rendering query parameters (window, viewport, quality) and the Accept header."""
    media_type = next(
        (
            candidate
            for media_range in wado.parse_accept(request.headers.get("Accept", ""))
            for candidate in rendering.MEDIA_TYPES
            if media_range.accepts(candidate)
        ),
        None,
    )
    if media_type is None:
        raise wado.not_acceptable("Rendered images are available as image/jpeg or image/png.")
    params = request.query_params
    try:
        window = rendering.parse_window(params["window"]) if "window" in params else None
        viewport = rendering.parse_viewport(params["viewport"]) if "viewport" in params else None
        quality = (
            rendering.parse_quality(params["quality"])
            if "quality" in params
            else rendering.DEFAULT_QUALITY
        )
    except rendering.BadRenderParameter as exc:
        raise exceptions.ValidationError({exc.parameter: [str(exc)]}) from exc
    if thumbnail and viewport is None:
        viewport = rendering.Viewport(*rendering.THUMBNAIL_SIZE)
    return rendering.RenderOptions(media_type, window, viewport, quality)


def render(
    instance: wado.StoredInstance, frame_number: int, options: rendering.RenderOptions
) -> bytes:
    try:
        return rendering.render_file(
            instance.path,
            instance.transfer_syntax_uid,
            frame_number,
            options,
            temp_folder(),
        )
    except rendering.UndecodableImage as exc:
        raise exceptions.APIException(str(exc)) from exc
    except rendering.RenderError as exc:
        raise exceptions.NotFound(str(exc)) from exc


def image_instances(instances: list[wado.StoredInstance]) -> list[wado.StoredInstance]:
    images = [instance for instance in instances if instance.rows]
    if not images:
        raise exceptions.NotFound("No image to render here.")
    return images


def _rendered_parts(instances: list[wado.StoredInstance], options) -> Iterator[Part]:
    for instance in instances:
        try:
            data = render(instance, 1, options)
        except exceptions.APIException:
            continue  # the response has started: an image that cannot be shown is left out
        yield Part(options.media_type, data=data)


class RenderedView(_RetrieveView):
    """Rendered study, series, instance or frames. An instance is its first frame; a study,
    a series or several frames are a multipart/related of images."""

    def get(self, request: Request, study: str, series=None, instance=None, frames=None):
        options = render_options(request)
        instances = image_instances(wado.select_instances(study, series, instance))
        if instance is None:
            return multipart_response(_rendered_parts(instances, options), options.media_type)
        numbers = wado.parse_frame_list(frames) if frames else [1]
        images = [render(instances[0], number, options) for number in numbers]
        if len(images) == 1:
            return HttpResponse(images[0], content_type=options.media_type)
        parts = [Part(options.media_type, data=image) for image in images]
        return multipart_response(parts, options.media_type)


class ThumbnailView(_RetrieveView):
    """A small JPEG (or PNG) of a study, series, instance or frame: the middle image instance
    of a study or series, the middle frame of a multi-frame instance; ``viewport`` sets the
    size (default 128 x 128, aspect ratio kept)."""

    def get(self, request: Request, study: str, series=None, instance=None, frames=None):
        options = render_options(request, thumbnail=True)
        instances = image_instances(wado.select_instances(study, series, instance))
        chosen = instances[len(instances) // 2]
        if frames:
            frame_number = wado.parse_frame_list(frames)[0]
        else:
            frame_number = (chosen.number_of_frames + 1) // 2
        return HttpResponse(render(chosen, frame_number, options), content_type=options.media_type)
