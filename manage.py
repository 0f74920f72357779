#!/usr/bin/env python3
"""Django's manage.py, kept so the usual tools work; `mailmarketer manage ...` does the same."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailmarketer.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
