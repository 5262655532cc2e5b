"""Vesalius PACS project package: settings, URLs, Celery app, the DICOM SCP and the
runtime settings record."""

from pacs.celery import app as celery_app

__all__ = ["celery_app"]
