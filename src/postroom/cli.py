"""The `postroom` command: parses arguments and calls services; no logic of its own."""

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import prometheus_client
import typer
import uvicorn
from sqlalchemy.ext.asyncio import AsyncSession

from postroom.app import create_app
from postroom.auth import service as auth
from postroom.core import event_loop, metrics_dir
from postroom.core.clock import SystemClock
from postroom.core.collector import settle_after_startup
from postroom.core.logging import configure_logging
from postroom.db.engine import create_engine, create_sessionmaker
from postroom.db.migrate import upgrade
from postroom.delivery.worker import run_worker
from postroom.errors import PostroomError
from postroom.events.bounces import run_bounces
from postroom.messages import service as messages_service
from postroom.senders import service as senders_service
from postroom.settings import InvalidSettings, Settings, load_settings

T = TypeVar("T")

log = logging.getLogger(__name__)

app = typer.Typer(
    help="postroom: transactional email with a Rebilly-compatible API.", no_args_is_help=True
)
organizations = typer.Typer(help="Organizations.", no_args_is_help=True)
keys = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(organizations, name="organizations")
app.add_typer(keys, name="keys")
senders = typer.Typer(help="Email delivery settings (sender addresses).", no_args_is_help=True)
app.add_typer(senders, name="senders")
messages = typer.Typer(help="Email messages.", no_args_is_help=True)
app.add_typer(messages, name="messages")


def _settings() -> Settings:
    try:
        settings = load_settings()
    except InvalidSettings as error:
        # One line naming the setting, no traceback; exit 2, as for a wrong command line.
        typer.echo(f"error: invalid settings: {error}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log_level, json_lines=settings.log_json)
    return settings


def _reason(error: BaseException) -> str:
    """The error's type and the first line of its text, for one line on a terminal."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def run() -> T:
        engine = create_engine(settings.resolved_database_url, pool_size=1)
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                return await work(session)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except PostroomError as error:
        typer.echo(f"error: {error.detail}", err=True)
        raise typer.Exit(1) from None


def _bootstrap(settings: Settings) -> None:
    given = settings.api_key.get_secret_value() if settings.api_key else None
    created = _in_transaction(settings, lambda s: auth.bootstrap(s, SystemClock().now(), given))
    if created is None:
        return
    typer.echo(f"Created organization {created.organization_id} (first start, empty database).")
    if given is None:
        # Printed to the terminal once, never logged: this is the only time the key is shown.
        typer.echo(f"Its API key, shown only now: {created.api_key}")
    else:
        typer.echo("Its API key is the one in POSTROOM_API_KEY.")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address.")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port.")] = None,
) -> None:
    """Run the API and a delivery worker in one process (SQLite by default)."""
    settings = _settings()
    upgrade(settings.resolved_database_url)
    _bootstrap(settings)
    died: list[BaseException] = []

    def worker_died(error: BaseException) -> None:
        # From the worker's thread: uvicorn checks should_exit every tenth of a second, then
        # finishes the requests under way and shuts down. No API without its worker.
        died.append(error)
        server.should_exit = True

    config = uvicorn.Config(
        create_app(settings, embedded_worker=True, on_worker_death=worker_died),
        host=host or settings.host,
        port=port if port is not None else settings.port,
        log_config=None,
        access_log=False,  # api/observability.py logs every request already, as JSON
    )
    server = uvicorn.Server(config)
    settle_after_startup()
    server.run()
    if died:
        # The log has its traceback ("delivery worker died").
        typer.echo(f"error: the delivery worker died ({_reason(died[0])}); stopped", err=True)
        raise typer.Exit(1)
    if not server.started:
        raise typer.Exit(3)  # as uvicorn.run: the application failed to start


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Listen address.")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port.")] = None,
    workers: Annotated[int, typer.Option(help="API processes.")] = 1,
) -> None:
    """Run API processes only (scale-out on PostgreSQL); run `postroom migrate` first."""
    settings = _settings()
    shared = metrics_dir.shared_directory()
    if workers > 1 or shared is not None:
        # Before uvicorn starts the processes, whose /metrics then add all of them up. (One
        # process runs here, where prometheus_client was imported already: it shares only if
        # the variable was set before the command started.)
        metrics_dir.prepare(shared or settings.data_dir / "metrics")
    uvicorn.run(
        "postroom.app:create_app_from_environment",
        factory=True,
        host=host or settings.host,
        port=port if port is not None else settings.port,
        workers=workers,
        log_config=None,
        access_log=False,  # api/observability.py logs every request already, as JSON
    )


@app.command()
def worker(
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus /metrics of this worker on this port.")
    ] = None,
) -> None:
    """Run a delivery worker; run as many as you like against PostgreSQL. SIGTERM finishes
    the batch under way, records it, and exits."""
    settings = _settings()
    if metrics_port is not None:
        prometheus_client.start_http_server(metrics_port, addr=settings.host)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await run_worker(settings, stop)

    settle_after_startup()
    try:
        event_loop.run(main())
    except Exception as error:
        log.critical("delivery worker died", exc_info=error)
        typer.echo(f"error: the delivery worker died ({_reason(error)})", err=True)
        raise typer.Exit(1) from None
    finally:
        metrics_dir.process_ended()


@app.command()
def bounces() -> None:
    """Run the SMTP server for bounces and feedback reports (the bounce domain's MX): mail to a
    message's bounce address becomes events on it; mail to any other address is refused."""
    settings = _settings()
    if not settings.events.bounce_domain:
        typer.echo("error: set POSTROOM_EVENTS__BOUNCE_DOMAIN first", err=True)
        raise typer.Exit(2)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await run_bounces(settings, stop)

    try:
        event_loop.run(main())
    except OSError as error:  # the address is taken, or not this host's
        typer.echo(f"error: cannot listen ({_reason(error)})", err=True)
        raise typer.Exit(1) from None


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    settings = _settings()
    applied = upgrade(settings.resolved_database_url)
    if applied:
        typer.echo(
            f"applied {applied} migration{'s' if applied != 1 else ''}; the database is up to date"
        )
    else:
        typer.echo("the database was up to date: no migration to apply")


@organizations.command("create")
def create_organization(name: Annotated[str, typer.Argument(help="Organization name.")]) -> None:
    """Create an organization and its first API key (printed once)."""
    settings = _settings()
    created = _in_transaction(
        settings, lambda s: auth.create_organization(s, name, SystemClock().now())
    )
    typer.echo(f"organization: {created.organization_id}")
    typer.echo(f"api key (shown only now): {created.api_key}")


@organizations.command("list")
def list_organizations() -> None:
    """Every organization: id, creation time, name."""
    found = _in_transaction(_settings(), auth.list_organizations_for_operator)
    for organization in found:
        typer.echo(f"{organization.id}\t{organization.created_at.isoformat()}\t{organization.name}")


@keys.command("create")
def create_key(
    organization_id: Annotated[str, typer.Argument(help="Organization id (org_…).")],
    name: Annotated[str, typer.Option(help="A label for the key.")] = "default",
) -> None:
    """Create another API key for an organization (printed once)."""
    settings = _settings()
    stored, key = _in_transaction(
        settings, lambda s: auth.issue_api_key(s, organization_id, SystemClock().now(), name=name)
    )
    typer.echo(f"api key id: {stored.id}")
    typer.echo(f"api key (shown only now): {key}")


@keys.command("list")
def list_keys(
    organization_id: Annotated[str, typer.Argument(help="Organization id (org_…).")],
) -> None:
    """An organization's live keys: id, creation time, name (never the key itself)."""
    found = _in_transaction(_settings(), lambda s: auth.list_keys_for_operator(s, organization_id))
    for key in found:
        typer.echo(f"{key.id}\t{key.created_at.isoformat()}\t{key.name}")


@keys.command("revoke")
def revoke_key(
    organization_id: Annotated[str, typer.Argument(help="Organization id (org_…).")],
    key_id: Annotated[str, typer.Argument(help="API key id (key_…).")],
) -> None:
    """Revoke a key: API processes stop taking it within POSTROOM_LIMITS__API_KEY_CACHE_SECONDS.
    The organization's last key is kept; create another first."""
    _in_transaction(
        _settings(),
        lambda s: auth.revoke_api_key(s, organization_id, key_id, SystemClock().now()),
    )
    typer.echo(f"{key_id} is revoked")


@senders.command("list")
def list_senders(
    pending: Annotated[bool, typer.Option(help="Only the settings not verified yet.")] = False,
) -> None:
    """Every organization's email delivery settings: id, organization, status, address."""
    settings = _settings()
    found = _in_transaction(
        settings, lambda s: senders_service.list_for_operator(s, pending_only=pending)
    )
    for setting in found:
        typer.echo(
            f"{setting.id}\t{setting.organization_id}\t{setting.status}\t{setting.from_address}"
        )


@senders.command("verify")
def verify_sender(
    setting_id: Annotated[str, typer.Argument(help="Email delivery setting id (mail_dst_…).")],
) -> None:
    """Verify a setting on the operator's word, without the mailed link."""
    settings = _settings()
    setting = _in_transaction(
        settings, lambda s: senders_service.verify_as_operator(s, setting_id, SystemClock().now())
    )
    typer.echo(f"{setting.id} ({setting.from_address}) is verified")


@messages.command("recount")
def recount_messages(
    organization_id: Annotated[
        str | None, typer.Argument(help="Organization id (org_…); every organization if none.")
    ] = None,
) -> None:
    """Rebuild the kept message counts (Pagination-Total) from the stored messages: after rows
    were written by other means than postroom (a bulk load, a manual fix)."""
    settings = _settings()
    _in_transaction(settings, lambda s: messages_service.recount(s, organization_id))
    typer.echo(f"recounted the messages of {organization_id or 'every organization'}")


def main() -> None:
    app()
