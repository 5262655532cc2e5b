"""WADO-RS and WADO-URI routes (PS3.18 10.4, 9)."""

urlpatterns: list = []
