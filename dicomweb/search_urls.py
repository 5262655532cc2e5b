"""QIDO-RS and STOW-RS routes (PS3.18 10.6, 10.5)."""

urlpatterns: list = []
