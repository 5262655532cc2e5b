"""Storage folders [STO]."""

from __future__ import annotations

from django.db import models


class Storage(models.Model):
    """A folder on a local or network drive that holds DICOM files.

    Instances keep a path relative to the folder, so moving a storage is copying its folder
    and editing ``path`` [STO-2]."""

    path = models.CharField(max_length=1024, unique=True)
    enabled = models.BooleanField(default=True, help_text="Disabled storages take no new files.")
    description = models.CharField(max_length=128, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.path
