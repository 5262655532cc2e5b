#!/usr/bin/env python
"""Django's command-line utility for administrative tasks.

``--cfg PATH`` (anywhere on the command line) names the optional config file, like
``PACS_CONFIG=PATH`` [DEF-1]."""

import os
import sys


def take_config_option(argv: list[str]) -> list[str]:
    """Remove ``--cfg PATH`` / ``--cfg=PATH`` from ``argv`` and export it as PACS_CONFIG."""
    remaining = []
    args = iter(argv)
    for arg in args:
        if arg == "--cfg":
            path = next(args, None)
            if path is None:
                sys.exit("--cfg needs a file path")
            os.environ["PACS_CONFIG"] = path
        elif arg.startswith("--cfg="):
            os.environ["PACS_CONFIG"] = arg.split("=", 1)[1]
        else:
            remaining.append(arg)
    return remaining


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pacs.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(take_config_option(sys.argv))


if __name__ == "__main__":
    main()
