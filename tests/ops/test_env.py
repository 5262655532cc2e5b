"""Strict configuration: bad values stop start-up with a clear message [DEF-1]."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from pacs import env

REPO_DIR = Path(__file__).resolve().parents[2]

# --- the helpers, as plain functions -----------------------------------------------------


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", "yes", "On", " on "])
def test_env_bool_reads_true(monkeypatch, raw):
    monkeypatch.setenv("X_FLAG", raw)
    assert env.env_bool("X_FLAG", False) is True


@pytest.mark.parametrize("raw", ["0", "false", "No", "off", ""])
def test_env_bool_reads_false(monkeypatch, raw):
    monkeypatch.setenv("X_FLAG", raw)
    assert env.env_bool("X_FLAG", True) is False


def test_env_bool_uses_the_default_when_unset(monkeypatch):
    monkeypatch.delenv("X_FLAG", raising=False)
    assert env.env_bool("X_FLAG", True) is True


@pytest.mark.parametrize("raw", ["maybe", "2", "y e s", "enabled"])
def test_env_bool_refuses_anything_else(monkeypatch, raw):
    monkeypatch.setenv("X_FLAG", raw)
    with pytest.raises(ImproperlyConfigured, match="X_FLAG"):
        env.env_bool("X_FLAG", False)


def test_env_int_reads_a_number_and_defaults_when_empty(monkeypatch):
    monkeypatch.setenv("X_NUM", " 42 ")
    assert env.env_int("X_NUM", 1, minimum=0, maximum=100) == 42
    monkeypatch.setenv("X_NUM", "")
    assert env.env_int("X_NUM", 7, minimum=0, maximum=100) == 7


@pytest.mark.parametrize("raw", ["abc", "4.5", "0x10", "1e3"])
def test_env_int_refuses_what_is_not_a_whole_number(monkeypatch, raw):
    monkeypatch.setenv("X_NUM", raw)
    with pytest.raises(ImproperlyConfigured, match="expected a whole number"):
        env.env_int("X_NUM", 1, minimum=0, maximum=100)


@pytest.mark.parametrize("raw", ["-1", "101"])
def test_env_int_refuses_out_of_range(monkeypatch, raw):
    monkeypatch.setenv("X_NUM", raw)
    with pytest.raises(ImproperlyConfigured, match="between 0 and 100"):
        env.env_int("X_NUM", 1, minimum=0, maximum=100)


@pytest.mark.parametrize("raw", ["0", "65536", "70000", "-5"])
def test_env_port_refuses_what_is_not_a_port(monkeypatch, raw):
    monkeypatch.setenv("X_PORT", raw)
    with pytest.raises(ImproperlyConfigured, match="X_PORT"):
        env.env_port("X_PORT", 3000)


def test_env_port_accepts_zero_only_where_allowed(monkeypatch):
    monkeypatch.setenv("X_PORT", "0")
    assert env.env_port("X_PORT", 8010, allow_zero=True) == 0
    monkeypatch.setenv("X_PORT", "65535")
    assert env.env_port("X_PORT", 3000) == 65535


@pytest.mark.parametrize("raw", ["VESALIUS", "MY AE", "a-b_c.d@1", "X" * 16])
def test_env_ae_title_accepts_valid_titles(monkeypatch, raw):
    monkeypatch.setenv("X_AE", raw)
    assert env.env_ae_title("X_AE", "VESALIUS") == raw


@pytest.mark.parametrize("raw", ["", "    ", "X" * 17, "BAD\\AE", "TAB\tAE", "NEW\nLINE", "É"])
def test_env_ae_title_refuses_invalid_titles(monkeypatch, raw):
    monkeypatch.setenv("X_AE", raw)
    with pytest.raises(ImproperlyConfigured, match="AE title"):
        env.env_ae_title("X_AE", "VESALIUS")


def test_env_choice_is_case_insensitive_and_strict(monkeypatch):
    monkeypatch.setenv("X_LEVEL", "debug")
    assert env.env_choice("X_LEVEL", "INFO", ("DEBUG", "INFO")) == "DEBUG"
    monkeypatch.setenv("X_LEVEL", "LOUD")
    with pytest.raises(ImproperlyConfigured, match="expected one of DEBUG, INFO"):
        env.env_choice("X_LEVEL", "INFO", ("DEBUG", "INFO"))


def test_env_list_splits_on_commas(monkeypatch):
    monkeypatch.setenv("X_LIST", " a.example, ,b.example ")
    assert env.env_list("X_LIST", []) == ["a.example", "b.example"]


def test_env_path_is_absolute(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("X_PATH", "relative/dir")
    assert env.env_path("X_PATH", Path("/unused")) == (tmp_path / "relative" / "dir").resolve()


def test_the_config_file_fills_the_environment_without_overriding_it(monkeypatch, tmp_path):
    config = tmp_path / "vesalius.env"
    config.write_text(
        '# a comment\n\nX_FROM_FILE=file value\nX_QUOTED="quoted value"\nX_BOTH=from file\n',
        encoding="utf-8",
    )
    for name in ("X_FROM_FILE", "X_QUOTED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("X_BOTH", "from env")

    env.load_config_file(str(config))

    assert os.environ["X_FROM_FILE"] == "file value"
    assert os.environ["X_QUOTED"] == "quoted value"
    assert os.environ["X_BOTH"] == "from env"


def test_the_config_file_must_exist(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="no such file"):
        env.load_config_file(str(tmp_path / "missing.env"))


def test_the_config_file_refuses_a_line_without_equals(tmp_path):
    config = tmp_path / "bad.env"
    config.write_text("PACS_AE_TITLE=OK\njust some words\n", encoding="utf-8")
    with pytest.raises(ImproperlyConfigured, match=r"bad\.env:2: expected KEY=VALUE"):
        env.load_config_file(str(config))


# --- a real start-up, in a subprocess ----------------------------------------------------


def clean_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """The current environment without any PACS option, with a private data dir."""
    result = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PACS_") and key not in {"DATABASE_URL", "CELERY_BROKER_URL"}
    }
    result["PACS_DATA_DIR"] = str(tmp_path / "data")
    result.update(overrides)
    return result


def run_manage(tmp_path: Path, *args: str, **overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_DIR,
        env=clean_env(tmp_path, **overrides),
        capture_output=True,
        text=True,
        timeout=120,
    )


def settings_value(tmp_path: Path, name: str, **overrides: str) -> str:
    code = (
        f"import django; django.setup(); from django.conf import settings; print(settings.{name})"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_DIR,
        env=clean_env(tmp_path, DJANGO_SETTINGS_MODULE="pacs.settings", **overrides),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.strip()


def assert_refused(completed: subprocess.CompletedProcess, *fragments: str) -> None:
    assert completed.returncode != 0, completed.stdout
    for fragment in fragments:
        assert fragment in completed.stderr, completed.stderr


def test_a_good_configuration_passes_the_checks(tmp_path):
    completed = run_manage(tmp_path, "check", PACS_DICOM_PORT="11112", PACS_AE_TITLE="MYPACS")
    assert completed.returncode == 0, completed.stderr


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("PACS_DICOM_PORT", "abc", "expected a whole number"),
        ("PACS_DICOM_PORT", "70000", "must be between 1 and 65535"),
        ("PACS_HTTP_PORT", "0", "must be between 1 and 65535"),
        ("PACS_MWL_PORT", "-1", "must be between 1 and 65535"),
        ("PACS_DICOMWEB_PORT", "65536", "must be between 0 and 65535"),
        ("PACS_SCP_PROCESSES", "0", "must be between 1 and 256"),
        ("PACS_AE_TITLE", "BAD\\AE", "an AE title is 1-16 printable characters"),
        ("PACS_AE_TITLE", "A_TITLE_THAT_IS_TOO_LONG", "an AE title is 1-16 printable"),
        ("PACS_AE_TITLE", "    ", "an AE title is 1-16 printable characters"),
        ("PACS_DEBUG", "sometimes", "expected true/false"),
        ("PACS_LOG_LEVEL", "LOUD", "expected one of"),
    ],
)
def test_start_up_refuses_a_bad_value(tmp_path, name, value, reason):
    completed = run_manage(tmp_path, "check", **{name: value})
    assert_refused(completed, "ImproperlyConfigured", name, reason)


def test_start_up_refuses_a_bad_runtime_option(tmp_path):
    # Runtime options are read when bootstrap applies them to the settings row, which
    # scripts/run and the containers do before any server process starts.
    completed = run_manage(tmp_path, "bootstrap", PACS_ACCEPT_ANY_AE="maybe")
    assert_refused(completed, "PACS_ACCEPT_ANY_AE='maybe'", "expected true/false")


@pytest.mark.parametrize(
    ("name", "value"),
    [("PACS_FREE_SPACE_LIMIT_MB", "lots"), ("PACS_CRITICAL_FREE_SPACE_MB", "-3")],
)
def test_bootstrap_refuses_bad_numbers_for_runtime_options(tmp_path, name, value):
    completed = run_manage(tmp_path, "bootstrap", **{name: value})
    assert_refused(completed, name)


def test_the_config_file_named_by_pacs_config_is_read(tmp_path):
    config = tmp_path / "vesalius.env"
    config.write_text("PACS_AE_TITLE=FROMFILE\nPACS_DICOM_PORT=11112\n", encoding="utf-8")

    assert settings_value(tmp_path, "PACS_AE_TITLE", PACS_CONFIG=str(config)) == "FROMFILE"
    assert settings_value(tmp_path, "PACS_DICOM_PORT", PACS_CONFIG=str(config)) == "11112"
    # The environment wins over the file.
    assert (
        settings_value(tmp_path, "PACS_AE_TITLE", PACS_CONFIG=str(config), PACS_AE_TITLE="ENV")
        == "ENV"
    )


def test_a_bad_value_in_the_config_file_is_refused(tmp_path):
    config = tmp_path / "vesalius.env"
    config.write_text("PACS_DICOM_PORT=abc\n", encoding="utf-8")
    completed = run_manage(tmp_path, "check", PACS_CONFIG=str(config))
    assert_refused(completed, "PACS_DICOM_PORT='abc'", "expected a whole number")


def test_a_missing_config_file_is_refused(tmp_path):
    completed = run_manage(tmp_path, "check", PACS_CONFIG=str(tmp_path / "nope.env"))
    assert_refused(completed, "no such file")


EXAMPLE_FILE = REPO_DIR / ".env.example"
OPTION_LINE = re.compile(r"^#([A-Z][A-Z0-9_]*)=(.*)$")
SETTINGS_NAMES = re.compile(r'"((?:PACS|DATABASE|CELERY)_[A-Z0-9_]+)"')

DUMP_SETTINGS = """
import json, django
django.setup()
from django.conf import settings
names = ["ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "CORS_ALLOWED_ORIGINS", "DEBUG", "TIME_ZONE",
         "DATA_DIR", "LOG_DIR", "DEFAULT_STORAGE_DIR", "CELERY_BROKER_URL",
         "CELERY_TASK_ALWAYS_EAGER"]
names += [n for n in dir(settings) if n.startswith("PACS_") and n != "PACS_RUNTIME_ENV"]
values = {n: str(getattr(settings, n)) for n in names}
values.update({f"runtime.{f}": str(read()) for f, (_n, read) in settings.PACS_RUNTIME_ENV.items()})
print(json.dumps(values, sort_keys=True))
"""


def example_options() -> dict[str, str]:
    options = {}
    for line in EXAMPLE_FILE.read_text(encoding="utf-8").splitlines():
        match = OPTION_LINE.match(line)
        if match:
            options[match.group(1)] = match.group(2)
    return options


def dump_settings(tmp_path: Path, **overrides: str) -> dict[str, str]:
    completed = subprocess.run(
        [sys.executable, "-c", DUMP_SETTINGS],
        cwd=REPO_DIR,
        env=clean_env(tmp_path, DJANGO_SETTINGS_MODULE="pacs.settings", **overrides),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def test_the_example_file_documents_every_option_of_the_settings():
    documented = EXAMPLE_FILE.read_text(encoding="utf-8")
    settings_source = (REPO_DIR / "pacs" / "settings.py").read_text(encoding="utf-8")
    missing = sorted(
        name for name in set(SETTINGS_NAMES.findall(settings_source)) if name not in documented
    )
    assert not missing, f"add these options to .env.example and docs/configuration.md: {missing}"


def test_every_option_of_the_example_file_is_in_the_configuration_docs():
    docs = (REPO_DIR / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = sorted(name for name in example_options() if name not in docs)
    assert not missing, f"document these options in docs/configuration.md: {missing}"


def test_the_example_file_states_the_real_defaults(tmp_path):
    """Uncommenting every option line of .env.example changes nothing: the values shown are
    the defaults."""
    config = tmp_path / "all-defaults.env"
    config.write_text(
        "\n".join(f"{name}={value}" for name, value in example_options().items()) + "\n",
        encoding="utf-8",
    )
    assert dump_settings(tmp_path, PACS_CONFIG=str(config)) == dump_settings(tmp_path)
    completed = run_manage(tmp_path, "check", PACS_CONFIG=str(config))
    assert completed.returncode == 0, completed.stderr


def test_manage_py_takes_the_config_file_from_cfg(tmp_path):
    config = tmp_path / "vesalius.env"
    config.write_text("PACS_AE_TITLE=FROMCFG\n", encoding="utf-8")
    completed = run_manage(
        tmp_path,
        "shell",
        "-c",
        "from django.conf import settings; print(settings.PACS_AE_TITLE)",
        "--cfg",
        str(config),
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip().splitlines()[-1] == "FROMCFG"
    config.write_text("PACS_DICOM_PORT=abc\n", encoding="utf-8")
    assert_refused(run_manage(tmp_path, f"--cfg={config}", "check"), "PACS_DICOM_PORT='abc'")
