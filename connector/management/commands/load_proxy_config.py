"""`manage.py load_proxy_config PATH`: create or update a proxy connector from a JSON file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from connector.exceptions import ProxyConfigInvalid
from connector.selectors import proxy_connector_get, proxy_connector_get_by_name
from connector.services import proxy_connector_save


class Command(BaseCommand):
    help = (
        "Create or update a proxy connector (a REST CRM described in App Connect's JSON format) "
        "from PATH, and print its proxyId alone on the last line. The connector of the same "
        "meta.name (or --proxy-id) is updated. The config is validated first; a refused one "
        "changes nothing and every fault is listed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="the config, a JSON file")
        parser.add_argument("--proxy-id", default="", help="update this connector (default: by meta.name)")
        parser.add_argument(
            "--secret-key-env",
            default="",
            metavar="VARIABLE",
            help="read the connector's secret key ({{secretKey}}) from this environment variable "
            "(never on the command line, where other users of the machine could see it)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            config = json.loads(Path(options["path"]).read_text(encoding="utf-8"))
        except OSError as exc:
            raise CommandError(f"Cannot read {options['path']}: {exc.strerror}") from exc
        except (ValueError, UnicodeDecodeError) as exc:
            raise CommandError(f"{options['path']} is not JSON: {exc}") from exc
        secret_key = None
        if options["secret_key_env"]:
            secret_key = os.environ.get(options["secret_key_env"])
            if not secret_key:
                raise CommandError(f"The environment variable {options['secret_key_env']} is not set.")
        proxy_id = options["proxy_id"]
        if not proxy_id and isinstance(config, dict) and isinstance(config.get("meta"), dict):
            existing = proxy_connector_get_by_name(name=config["meta"].get("name"))
            proxy_id = existing.proxy_id if existing is not None else ""
        elif proxy_id and proxy_connector_get(proxy_id=proxy_id) is None:
            raise CommandError(f"No proxy connector {proxy_id!r}.")
        try:
            row = proxy_connector_save(config=config, secret_key=secret_key, proxy_id=proxy_id)
        except ProxyConfigInvalid as exc:
            raise CommandError("The config was refused:\n" + "\n".join(f"- {e}" for e in exc.errors)) from exc
        verb = "Updated" if proxy_id else "Created"
        self.stdout.write(f"{verb} proxy connector {row.name!r} (revision {row.revision}); its proxyId:")
        self.stdout.write(row.proxy_id)
