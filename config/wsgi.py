"""WSGI entry point (gunicorn config.wsgi): App Connect's API on a lean middleware chain."""

import os

import django
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)

from config.handlers import ApiWSGIHandler, PathDispatcher  # noqa: E402

application = PathDispatcher(api=ApiWSGIHandler(), full=get_wsgi_application())
