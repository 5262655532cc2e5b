from django.apps import AppConfig


class DicomwebConfig(AppConfig):
    name = "dicomweb"
