"""What the DICOMweb service keeps besides the studies index: the metadata cache."""

from __future__ import annotations

from django.db import models

from studies.models import Instance


class InstanceMetadata(models.Model):
    """The PS3.18 F.2 JSON of one instance, computed once from its file so that series and
    study ``/metadata`` read rows instead of opening every file (issue 6, item 2).

    Rows are added lazily by the first ``/metadata`` that needs them; they go with their
    instance (deletion, replacement by ``overwrite_image``) through the cascade. BulkDataURIs
    are stored relative to the DICOMweb root, which differs between ports and host names,
    and made absolute when served."""

    instance = models.OneToOneField(
        Instance, on_delete=models.CASCADE, primary_key=True, related_name="dicomweb_metadata"
    )
    document = models.TextField()
    computed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "instance metadata"

    def __str__(self) -> str:
        return f"metadata of instance {self.instance_id}"
