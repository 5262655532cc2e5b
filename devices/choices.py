"""Choices for devices: the preferred transfer syntaxes of [DEV-TS]."""

from django.db import models

AS_IS = "as_is"


class PreferredTransferSyntax(models.TextChoices):
    """What we send to a device by C-GET and C-MOVE (SPEC [DEV-TS])."""

    AS_IS = AS_IS, "As is"
    IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2", "Implicit VR Little Endian"
    EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1", "Explicit VR Little Endian"
    EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2", "Explicit VR Big Endian"
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = (
        "1.2.840.10008.1.2.1.99",
        "Deflated Explicit VR Little Endian",
    )
    JPEG_BASELINE = "1.2.840.10008.1.2.4.50", "JPEG Baseline"
    JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70", "JPEG Lossless SV1"
    JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80", "JPEG-LS Lossless"
    JPEG_LS_NEAR_LOSSLESS = "1.2.840.10008.1.2.4.81", "JPEG-LS Near-lossless"
    JPEG_2000_LOSSLESS = "1.2.840.10008.1.2.4.90", "JPEG 2000 Lossless"
    JPEG_2000 = "1.2.840.10008.1.2.4.91", "JPEG 2000"
    RLE_LOSSLESS = "1.2.840.10008.1.2.5", "RLE Lossless"


class DeviceStatus(models.TextChoices):
    """Heartbeat status [DEV-HB]."""

    ONLINE = "online", "Online"
    OFFLINE = "offline", "Offline"
    UNKNOWN = "unknown", "Unknown"
