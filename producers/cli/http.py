"""The HTTP service: ``serve``, and its API keys: ``keys create|list|revoke``."""
from __future__ import annotations

import click

from producers.cli.common import cli_context, cli_settings, cli_store, echo_json


@click.command()
@click.option("--bind", help="Address to listen on (default: BACKFILL_API_BIND, 127.0.0.1).")
@click.option("--port", type=int, help="Port (default: BACKFILL_API_PORT, 8080).")
@click.option("--certfile", type=click.Path(exists=True, dir_okay=False), help="Serve https with this certificate.")
@click.option("--keyfile", type=click.Path(exists=True, dir_okay=False), help="...and this private key.")
def serve(bind: str | None, port: int | None, certfile: str | None, keyfile: str | None) -> None:
    """Serve the imports API over HTTP (see the README's "HTTP API"); keys come from `backfill keys create`."""
    import uvicorn

    from producers.web.app import create_app
    from producers.web.limits import protocol
    from worker.logs import get_logger

    settings = cli_settings()
    if bool(certfile) != bool(keyfile):
        raise click.UsageError("--certfile and --keyfile go together")
    app = create_app(cli_context())
    host, listen = bind or settings.api_bind, port or settings.api_port
    get_logger("backfill.api").info("serving", bind=host, port=listen, tls=bool(certfile))
    # h11 (headers at most 16 KB), with the header and body timeouts in front (producers.web.limits)
    uvicorn.run(app, host=host, port=listen, log_level="warning", access_log=False, ssl_certfile=certfile,
                ssl_keyfile=keyfile, timeout_graceful_shutdown=30,
                http=protocol(settings.api_header_timeout_s, settings.api_body_timeout_s))


@click.group()
def keys() -> None:
    """API keys of the HTTP service."""


@keys.command("create")
@click.option("--name", required=True, help="Who or what uses it (a script, a team).")
@click.option("--scope", type=click.Choice(["read", "import", "track"]), default="import", show_default=True,
              help="read: every GET; import: reads, imports, cancels and tracking calls; track: only the "
                   "tracking calls (/v1/batch...): the write key to give Segment's libraries.")
@click.option("--json", "as_json", is_flag=True)
def keys_create(name: str, scope: str, as_json: bool) -> None:
    """Create a key and print it, once: only its hash is kept."""
    from producers.text import check_text
    from worker.errors import ConfigError

    try:
        check_text("--name", name)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--name") from None
    record, secret = cli_store().apikeys.create(name, scope)
    if as_json:
        echo_json({"id": record.id, "name": record.name, "scope": record.scope, "key": secret})
        return
    click.echo(secret)
    click.echo(f"key {record.id} ({scope}) for {name!r}: keep it now, it is not shown again", err=True)


@keys.command("list")
@click.option("--json", "as_json", is_flag=True)
def keys_list(as_json: bool) -> None:
    """Every key: id, scope, name, created, revoked."""
    from worker.timestamps import iso

    found = cli_store().apikeys.all()
    if as_json:
        echo_json([{"id": k.id, "name": k.name, "scope": k.scope, "created_ms": k.created_ms,
                    "revoked_ms": k.revoked_ms} for k in found])
        return
    if not found:
        click.echo("no keys yet (backfill keys create --name NAME)")
        return
    click.echo(f"{'id':<10}{'scope':<8}{'state':<33}{'created':<26}name")
    for k in found:
        revoked = f"revoked {iso(k.revoked_ms / 1000)}" if k.revoked_ms else "active"
        click.echo(f"{k.id:<10}{k.scope:<8}{revoked:<33}{iso(k.created_ms / 1000):<26}{k.name}")


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key by its id (``keys list``): requests with it get 401 from now on."""

    if not cli_store().apikeys.revoke(key_id):
        raise click.ClickException(f"no key {key_id!r} (backfill keys list)")
    click.echo(f"key {key_id} revoked")
