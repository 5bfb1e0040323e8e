"""The service's commands: ``serve``, ``worker``, ``users``, ``apikey`` and ``purge``.

They share the server's settings (``--config``) and take ``--data-dir`` to
point at another data folder (the SQLite database lives there unless
``WATCHKEEPER_DATABASE_URL`` names another database).
"""

from __future__ import annotations

import getpass
import logging
import signal
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import click
import typer
from rich.console import Console
from rich.table import Table

from ..config import Settings
from ..logging_setup import configure as configure_logging
from .stopping import StopSignals

if TYPE_CHECKING:
    from ..auth import Principal

# Importing the store loads Alembic (about a second), so commands import it when they run.
ROLES_TEXT = "admin, operator or viewer"
DataDir = Annotated[Optional[Path], typer.Option("--data-dir", help="Data folder (default: settings' data_dir).")]
log = logging.getLogger(__name__)


def _role(value: str) -> str:
    from ..store.models import ROLES

    if value not in ROLES:
        raise click.BadParameter(f"{value!r}: give {ROLES_TEXT}", param_hint="--role")
    return value


def _cli_actor() -> Principal:
    """Audit entries from the command line name the operating-system account that ran the command."""
    from ..auth import Principal

    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    return Principal(user_id=None, name=f"cli:{name}", role="admin", via="cli")


class _PlainMessages(logging.Filter):
    """uvicorn attaches a coloured copy of some messages as an extra field; the plain message is enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.pop("color_message", None)
        return True


def _parse_before(text: str) -> datetime:
    """An ISO date (midnight UTC) or date-time (UTC unless it names a zone)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r}: give a date like 2024-01-31 or 2024-01-31T12:00", param_hint="--before")
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _database_queue_worker(settings: Settings, threads: int) -> None:
    """Job threads on the database queue alone (``serve``'s own, in a process of their own), until a signal."""
    from ..api.app import build_job_runtime

    stop = StopSignals()
    settings.server.job_workers = threads
    runtime = build_job_runtime(settings)
    runtime.workers.start()
    try:
        log.info("shutdown: %s received", stop.wait())
    finally:
        runtime.workers.stop(settings.server.job_shutdown_grace_s)
        runtime.db.close()


def register(app: typer.Typer, load_settings: Callable[[], Settings]) -> None:
    """Add the service's commands to the ``watchkeeper`` app."""

    def settings_for(data_dir: Path | None) -> Settings:
        settings = load_settings()
        if data_dir is not None:
            settings.data_dir = data_dir
        return settings

    @app.command()
    def serve(
        host: Annotated[Optional[str], typer.Option(help="Address to listen on (0.0.0.0 for remote clients).")] = None,
        port: Annotated[Optional[int], typer.Option(min=1, max=65535, help="Port (default 5000).")] = None,
        data_dir: DataDir = None,
        ssl_certfile: Annotated[Optional[Path], typer.Option(help="TLS certificate (PEM): serve HTTPS.")] = None,
        ssl_keyfile: Annotated[Optional[Path], typer.Option(help="TLS private key (PEM).")] = None,
    ) -> None:
        """Run the REST API with its job workers (default http://127.0.0.1:5000, data in ./data)."""
        import uvicorn

        from ..api.app import create_app

        settings = settings_for(data_dir)
        server = settings.server
        server.host = host or server.host
        server.port = port or server.port
        server.ssl_certfile = ssl_certfile or server.ssl_certfile
        server.ssl_keyfile = ssl_keyfile or server.ssl_keyfile
        if (server.ssl_certfile is None) != (server.ssl_keyfile is None):
            raise click.UsageError("HTTPS needs both --ssl-certfile and --ssl-keyfile")
        configure_logging(logging.INFO, settings.logging.format)
        for handler in logging.getLogger().handlers:
            handler.addFilter(_PlainMessages())
        # uvicorn raises the signal that stopped it again once it has shut down: ignored then, a stop that
        # completed exits 0, as the workers do.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        uvicorn.run(
            create_app(settings), host=server.host, port=server.port, log_config=None,
            ssl_certfile=str(server.ssl_certfile) if server.ssl_certfile else None,
            ssl_keyfile=str(server.ssl_keyfile) if server.ssl_keyfile else None,
        )

    @app.command()
    def worker(
        queues: Annotated[Optional[str], typer.Option(
            help="queue: celery only. Broker queues to take jobs from, comma-separated: watchkeeper.heavy "
                 "(video), watchkeeper.light (image, audio); default both.")] = None,
        concurrency: Annotated[int, typer.Option(min=1, help="Jobs run at once (threads of this process).")] = 1,
        data_dir: DataDir = None,
    ) -> None:
        """Run a job worker on the server's database and data folder: on the broker's messages (queue: celery)
        or claiming from the database itself (queue: local). SIGTERM or Ctrl-C: running jobs get
        server.job_shutdown_grace_s to finish, then go back to the queue."""
        settings = settings_for(data_dir)
        if settings.queue == "local" and queues is not None:
            raise click.UsageError("--queues needs 'queue: celery'; a local worker takes every job")
        configure_logging(logging.INFO, settings.logging.format)
        if settings.queue == "local":
            _database_queue_worker(settings, concurrency)
            return
        from ..jobs.celery_app import QUEUES, configure

        queues = queues or ",".join(QUEUES)
        unknown = sorted(set(queues.split(",")) - set(QUEUES))
        if unknown:
            raise click.BadParameter(f"{', '.join(unknown)}: give {' or '.join(QUEUES)}", param_hint="--queues")
        # Threads, not forked children: a worker killed outright takes its jobs with it, and they run elsewhere.
        configure(settings).worker_main(["worker", "--pool", "threads", "--concurrency", str(concurrency),
                                         "--queues", queues, "--loglevel", "INFO", "--without-gossip",
                                         "--without-mingle"])

    users_app = typer.Typer(help="User accounts.", no_args_is_help=True)
    app.add_typer(users_app, name="users")

    @users_app.command("create")
    def users_create(
        name: Annotated[str, typer.Argument(help="Login name.")],
        role: Annotated[str, typer.Option(help=f"One of {ROLES_TEXT}.", callback=_role)],
        password_stdin: Annotated[bool, typer.Option(
            "--password-stdin", help="Read the password from standard input instead of prompting.")] = False,
        email: Annotated[Optional[str], typer.Option(help="E-mail address.")] = None,
        data_dir: DataDir = None,
    ) -> None:
        """Create an active user (prompts for the password twice unless --password-stdin)."""
        from ..auth.audit import record
        from ..auth.users import create_user
        from ..store.db import open_database

        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        with open_database(settings_for(data_dir)) as db:
            with db.session() as session:
                user = create_user(session, name, password, role, email=email)
                record(session, _cli_actor(), "user.create", target_type="user", target_id=user.id,
                       details={"name": user.name, "role": user.role})
        Console(stderr=True).print(f"created {role} '{name}'", highlight=False)

    @users_app.command("list")
    def users_list(data_dir: DataDir = None) -> None:
        """List the users."""
        from sqlalchemy import select

        from ..store.db import open_database
        from ..store.models import User

        with open_database(settings_for(data_dir)) as db:
            with db.session(write=False) as session:
                users = list(session.scalars(select(User).order_by(User.name)))
        table = Table(title="Users")
        for column in ("id", "name", "role", "state", "e-mail", "created", "last login"):
            table.add_column(column)
        for u in users:
            table.add_row(str(u.id), u.name, u.role, u.state, u.email or "", f"{u.created_at:%Y-%m-%d %H:%M}",
                          f"{u.last_login_at:%Y-%m-%d %H:%M}" if u.last_login_at else "")
        Console().print(table)

    apikey_app = typer.Typer(help="API keys.", no_args_is_help=True)
    app.add_typer(apikey_app, name="apikey")

    @apikey_app.command("create")
    def apikey_create(
        name: Annotated[str, typer.Option(help="What the key is for.")],
        role: Annotated[str, typer.Option(help=f"One of {ROLES_TEXT}; not above the owner's.", callback=_role)],
        user: Annotated[Optional[str], typer.Option(help="Owner's user name (default: the only admin).")] = None,
        data_dir: DataDir = None,
    ) -> None:
        """Create an API key and print it once (only its hash is stored)."""
        from sqlalchemy import select

        from ..auth.audit import record
        from ..auth.keys import create_key
        from ..auth.users import find_user
        from ..store.db import open_database
        from ..store.models import User

        with open_database(settings_for(data_dir)) as db:
            with db.session() as session:
                if user is not None:
                    owner = find_user(session, user)
                    if owner is None:
                        raise click.UsageError(f"no user '{user}'; see 'watchkeeper users list'")
                else:
                    admins = list(session.scalars(select(User).where(User.role == "admin", User.state == "active")))
                    if len(admins) != 1:
                        raise click.UsageError(
                            "name the key's owner with --user" if admins else
                            "no admin yet: create one with 'watchkeeper users create NAME --role admin'")
                    owner = admins[0]
                key, secret = create_key(session, owner, name, role)
                record(session, _cli_actor(), "key.create", target_type="api_key", target_id=key.id,
                       details={"name": name, "role": role, "user_id": owner.id})
        Console(stderr=True).print(f"API key '{name}' ({role}, owner {owner.name}); it is shown only now:",
                                   highlight=False)
        print(secret)

    @app.command()
    def purge(
        before: Annotated[str, typer.Option(help="Delete what is older than this date (UTC), e.g. 2024-01-31.")],
        keep_users: Annotated[bool, typer.Option(
            "--keep-users/--drop-users",
            help="Keep user accounts and their keys (the default); --drop-users also deletes those created "
                 "before the date.")] = True,
        data_dir: DataDir = None,
    ) -> None:
        """Delete analyses, incidents (and live incidents' evidence), finished jobs, sent deliveries, uploads and
        audit entries older than a date."""
        from ..artefacts import open_artefact_store
        from ..auth.audit import record
        from ..store.db import open_database
        from ..store.purge import purge as purge_store

        moment = _parse_before(before)
        settings = settings_for(data_dir)
        with open_database(settings) as db:
            counts = purge_store(db, moment, keep_users=keep_users, artefacts=open_artefact_store(settings))
            with db.session() as session:
                record(session, _cli_actor(), "purge", details={"before": moment.isoformat(), **counts})
        table = Table(title=f"Deleted before {moment.isoformat()}")
        table.add_column("what")
        table.add_column("rows", justify="right")
        for what, count in counts.items():
            table.add_row(what, str(count))
        Console().print(table)
