from django.apps import AppConfig


class StoragesConfig(AppConfig):
    name = "storages"
