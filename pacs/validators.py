"""Validators shared by several apps: AE titles and network host names."""

from __future__ import annotations

import ipaddress
import re

from django.core.exceptions import ValidationError

from pacs.env import AE_TITLE_RE

_LABEL_RE = re.compile(r"^[A-Za-z0-9-]{1,63}$")


def validate_ae_title(value: str) -> None:
    """PS3.5 6.2 AE VR: 1-16 chars, no backslash or control characters, not all spaces."""
    if not value or not AE_TITLE_RE.match(value) or not value.strip():
        raise ValidationError(
            "An AE title is 1 to 16 printable characters, without backslash, not all spaces."
        )


def validate_host(value: str) -> None:
    """An IPv4 or IPv6 address, or an FQDN (<= 255 chars, labels <= 63, letters, digits,
    hyphen; labels do not start or end with a hyphen)."""
    if not value:
        raise ValidationError("A host is required.")
    try:
        ipaddress.ip_address(value)
        return
    except ValueError:
        pass
    if len(value) > 255:
        raise ValidationError("A host name is at most 255 characters.")
    labels = value.rstrip(".").split(".")
    for label in labels:
        if not _LABEL_RE.match(label) or label.startswith("-") or label.endswith("-"):
            raise ValidationError(
                f"{value!r} is neither an IP address nor a host name "
                "(letters, digits, dots and hyphens; each label at most 63 characters)."
            )
    if all(label.isdigit() for label in labels):
        raise ValidationError(f"{value!r} is not a valid IP address.")
