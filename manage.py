#!/usr/bin/env python3
"""Django's manage.py, kept so the usual tools work; `mailmarketer manage ...` does the same."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailmarketer.settings")
    # manage.py is the developer's entry point, like `make run`: the embedded SQLite default in
    # developer mode unless told otherwise. Production uses `mailmarketer manage ...`.
    os.environ.setdefault("MM_DEBUG", "true")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
