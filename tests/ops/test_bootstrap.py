"""``manage.py bootstrap``: the admin user, runtime options from the environment, the
default storage [DEF-1], [DEF-2]."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from pacs.config import get_runtime_settings
from storages.models import Storage

pytestmark = pytest.mark.django_db

RUNTIME_ENV_NAMES = [
    "PACS_ADMIN_PASSWORD",
    "PACS_ACCEPT_ANY_AE",
    "PACS_ACCESSION_CROP",
    "PACS_OVERWRITE_IMAGE",
    "PACS_FREE_SPACE_LIMIT_MB",
    "PACS_CRITICAL_FREE_SPACE_MB",
    "PACS_TEMP_DIR",
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, settings, tmp_path: Path) -> Path:
    for name in RUNTIME_ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    settings.DATA_DIR = tmp_path
    settings.DEFAULT_STORAGE_DIR = tmp_path / "storage"
    return tmp_path


def bootstrap() -> str:
    out = io.StringIO()
    call_command("bootstrap", stdout=out, stderr=io.StringIO())
    return out.getvalue()


def admin():
    return get_user_model().objects.get(username="admin")


def test_it_creates_the_admin_superuser_with_a_generated_password_printed_once(tmp_path):
    output = bootstrap()

    password_file = tmp_path / "admin-password.txt"
    password = password_file.read_text(encoding="utf-8").strip()
    assert len(password) >= 12
    assert password in output
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    user = admin()
    assert user.is_superuser and user.is_staff and user.is_active
    assert user.check_password(password)

    second_output = bootstrap()
    assert password not in second_output
    assert admin().check_password(password)


def test_it_takes_the_admin_password_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PACS_ADMIN_PASSWORD", "first-secret")
    output = bootstrap()

    assert admin().check_password("first-secret")
    assert "first-secret" not in output
    assert not (tmp_path / "admin-password.txt").exists()


def test_it_resets_the_admin_password_at_every_start_when_given(monkeypatch, tmp_path):
    bootstrap()
    assert (tmp_path / "admin-password.txt").exists()
    user = admin()
    user.set_password("changed-in-the-console")
    user.is_active = False
    user.save()

    monkeypatch.setenv("PACS_ADMIN_PASSWORD", "from-the-env")
    bootstrap()

    user = admin()
    assert user.check_password("from-the-env")
    assert user.is_active
    # The generated password no longer works, so its file is not left behind.
    assert not (tmp_path / "admin-password.txt").exists()


def test_it_keeps_a_password_changed_in_the_console_without_the_env_variable():
    bootstrap()
    user = admin()
    user.set_password("changed-in-the-console")
    user.save()

    bootstrap()

    assert admin().check_password("changed-in-the-console")


def test_it_applies_runtime_options_set_in_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PACS_ACCEPT_ANY_AE", "yes")
    monkeypatch.setenv("PACS_ACCESSION_CROP", "on")
    monkeypatch.setenv("PACS_FREE_SPACE_LIMIT_MB", "100")
    monkeypatch.setenv("PACS_TEMP_DIR", str(tmp_path / "my-temp"))

    bootstrap()

    row = get_runtime_settings(fresh=True)
    assert row.accept_any_ae is True
    assert row.accession_crop is True
    assert row.overwrite_image is False
    assert row.free_space_limit_mb == 100
    assert row.temp_dir == str((tmp_path / "my-temp").resolve())
    assert (tmp_path / "my-temp").is_dir()


def test_it_keeps_runtime_options_saved_in_the_console_when_the_env_is_silent():
    row = get_runtime_settings(fresh=True)
    row.accept_any_ae = True
    row.save()

    bootstrap()

    assert get_runtime_settings(fresh=True).accept_any_ae is True


def test_it_refuses_a_bad_runtime_option_before_touching_anything(monkeypatch):
    monkeypatch.setenv("PACS_ACCEPT_ANY_AE", "maybe")

    with pytest.raises(CommandError, match="PACS_ACCEPT_ANY_AE"):
        bootstrap()

    assert not get_user_model().objects.filter(username="admin").exists()


def test_it_creates_the_default_storage_once(tmp_path):
    bootstrap()
    bootstrap()

    storages = list(Storage.objects.all())
    assert [s.path for s in storages] == [str(tmp_path / "storage")]
    assert (tmp_path / "storage").is_dir()


def test_it_adds_no_default_storage_when_one_exists(tmp_path):
    existing = tmp_path / "elsewhere"
    existing.mkdir()
    Storage.objects.create(path=str(existing))

    bootstrap()

    assert list(Storage.objects.values_list("path", flat=True)) == [str(existing)]
    assert not (tmp_path / "storage").exists()
