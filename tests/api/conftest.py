"""Fixtures of the REST API tests: users, clients, a storage folder."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from pacs.config import invalidate_runtime_settings
from storages.models import Storage

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _fresh_runtime_settings():
    """The runtime settings cache must not carry rows across test transactions."""
    invalidate_runtime_settings()
    yield
    invalidate_runtime_settings()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user(username="operator", password=PASSWORD)


@pytest.fixture
def api(user) -> APIClient:
    """An authenticated client that costs no queries for authentication."""
    client = APIClient()
    client.force_authenticate(user=user)
    return client


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()


@pytest.fixture
def session_client(user) -> APIClient:
    """A browser-like client: logged in through the API, CSRF enforced."""
    client = APIClient(enforce_csrf_checks=True)
    response = client.post(
        "/api/auth/login/", {"username": user.username, "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200, response.content
    client.csrf_token = response.json()["csrf_token"]
    return client


@pytest.fixture
def storage(tmp_path) -> Storage:
    folder = tmp_path / "storage"
    folder.mkdir()
    return Storage.objects.create(path=str(folder))
