"""``manage.py bootstrap``: what every start does after ``migrate``.

1. The ``admin`` superuser [DEF-1]: created when missing. ``PACS_ADMIN_PASSWORD``, when
   given, sets its password at every start (so a forgotten password is one restart away).
   Without it, a password is generated on first creation, printed once and kept in
   ``PACS_DATA_DIR/admin-password.txt`` (mode 0600).
2. Runtime options set in the environment (``PACS_RUNTIME_ENV``) are written into the
   runtime settings row (``pacs.config.apply_environment``).
3. On the embedded default, the first storage folder is created under the data directory
   when no storage exists yet [DEF-2].

It is idempotent: run it before every start of the web and SCP processes.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from pacs.config import apply_environment
from storages.services import ensure_default_storage

ADMIN_USERNAME = "admin"
PASSWORD_FILE_NAME = "admin-password.txt"


def password_file() -> Path:
    return Path(settings.DATA_DIR) / PASSWORD_FILE_NAME


def write_password_file(path: Path, password: str) -> None:
    """Write the password readable by the owner only, without a moment where it is not."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(password + "\n")
    path.chmod(0o600)


class Command(BaseCommand):
    help = (
        "After migrate: create the admin user (password from PACS_ADMIN_PASSWORD or generated "
        "once), apply runtime options from the environment, create the default storage."
    )

    def handle(self, *args, **options) -> None:
        self.check_environment()
        self.ensure_admin()
        runtime = apply_environment()
        self.ensure_temp_dir(runtime.temp_dir)
        self.stdout.write(
            f"Runtime settings: AE title {runtime.ae_title}, "
            f"accept any AE {'on' if runtime.accept_any_ae else 'off'}, "
            f"temp folder {runtime.temp_dir}"
        )
        ensure_default_storage(Path(settings.DEFAULT_STORAGE_DIR))

    def check_environment(self) -> None:
        """Refuse bad runtime options before touching the database, with a one-line reason."""
        for env_name, read in settings.PACS_RUNTIME_ENV.values():
            if env_name in os.environ:
                try:
                    read()
                except ImproperlyConfigured as exc:
                    raise CommandError(f"Bad configuration: {exc}") from None

    def ensure_temp_dir(self, temp_dir: str) -> None:
        """Create the temp folder [STO-6]; if that fails, say so now (ingest will refuse)."""
        if not temp_dir:
            return
        try:
            Path(temp_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.stderr.write(f"Warning: cannot create the temp folder {temp_dir}: {exc}")

    def ensure_admin(self) -> None:
        user_model = get_user_model()
        from_env = os.environ.get("PACS_ADMIN_PASSWORD") or None
        with transaction.atomic():
            user = user_model.objects.filter(username=ADMIN_USERNAME).first()
            if user is None:
                password = from_env or secrets.token_urlsafe(12)
                user_model.objects.create_superuser(ADMIN_USERNAME, "", password)
                if from_env:
                    password_file().unlink(missing_ok=True)
                    self.stdout.write(
                        f"Created user '{ADMIN_USERNAME}' with the password "
                        "from PACS_ADMIN_PASSWORD"
                    )
                    return
                write_password_file(password_file(), password)
                # Printed once, on first creation; it is also in the file below.
                self.stdout.write(
                    self.style.SUCCESS(
                        f"Created user '{ADMIN_USERNAME}' with password: {password}\n"
                        f"(kept in {password_file()}; set PACS_ADMIN_PASSWORD to choose one)"
                    )
                )
                return
            if from_env:
                changed = not user.check_password(from_env)
                if changed:
                    user.set_password(from_env)
                fields = ["password"] if changed else []
                # The admin account must stay usable as the way in.
                for flag in ("is_active", "is_staff", "is_superuser"):
                    if not getattr(user, flag):
                        setattr(user, flag, True)
                        fields.append(flag)
                if fields:
                    user.save(update_fields=fields)
                if changed:
                    password_file().unlink(missing_ok=True)
                    self.stdout.write(
                        f"Set the password of '{ADMIN_USERNAME}' from PACS_ADMIN_PASSWORD"
                    )
