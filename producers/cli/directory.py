"""The people directory and the campaigns: ``people show``, ``campaigns add|list|remove``."""
from __future__ import annotations

import click
import orjson

from producers.cli.common import cli_context, cli_store, echo_json
from producers.lookup import find_person, typed
from worker.people.columns import IDENTIFIERS


@click.group()
def people() -> None:
    """The people directory."""


@people.command("show")
@click.argument("who")
@click.option("--by", type=click.Choice(IDENTIFIERS),
              help="What WHO is (default: tried as cio_id, then id, then e-mail).")
@click.option("--json", "as_json", is_flag=True)
def people_show(who: str, by: str | None, as_json: bool) -> None:
    """Print a person's identifiers, attributes and subscription topics (WHO: a cio_id, an id or an e-mail,
    one they have or had: an old id or e-mail, an alias's old id, an anonymous id tied to them), as the
    results database holds them; a person not stored there yet is read from the directory in Redis."""
    stored, note = find_person(cli_context(), who, by)
    if stored is not None and note:
        click.echo(f"(from the directory in Redis: {note})", err=True)
    if stored is None:
        raise click.ClickException(f"no person with {by or 'cio_id, id or e-mail'} {who!r}")
    if as_json:
        echo_json(typed(stored))
        return
    identifiers = {k: stored[k] for k in ("cio_id", "id", "email") if k in stored}
    reserved = {k: stored[k] for k in ("created_at", "unsubscribed") if k in stored}
    attributes = {k[2:]: v for k, v in sorted(stored.items()) if k.startswith("a:")}
    topics = {k[2:]: v == "true" for k, v in sorted(stored.items()) if k.startswith("t:")}
    for kind, value in identifiers.items():
        click.echo(f"{kind:<14}{value}")
    if "created_at" in reserved:
        from worker.timestamps import iso

        click.echo(f"{'created_at':<14}{iso(float(reserved['created_at']))} ({reserved['created_at']})")
    if "unsubscribed" in reserved:
        click.echo(f"{'unsubscribed':<14}{reserved['unsubscribed']}")
    if stored.get("tags"):
        click.echo(f"{'tags':<14}{', '.join(orjson.loads(stored['tags']))}")
    # Names as wide as the longest (22 to 40 characters), so a name never runs into its value; a
    # longer name stands on its own line, its value under it.
    width = min(max([22, *(len(n) for n in [*attributes, *topics])]), 40) + 2
    click.echo("attributes" + ("" if attributes else "    (none)"))
    for name, value in attributes.items():
        _echo_pair(name, value, width)
    click.echo("topics" + ("" if topics else "        (none set: every topic at its default)"))
    for name, flag in topics.items():
        _echo_pair(name, "subscribed" if flag else "unsubscribed", width)


def _echo_pair(name: str, value: str, width: int) -> None:
    if len(name) < width:
        click.echo(f"  {name:<{width}}{value}")
    else:
        click.echo(f"  {name}\n  {'':<{width}}{value}")


@click.group()
def campaigns() -> None:
    """Campaigns that events trigger (name, trigger event, delay)."""


@campaigns.command("add")
@click.argument("name")
@click.option("--event", required=True, help="The event name that triggers it.")
@click.option("--delay", default="0", show_default=True, help="Delay after the event: 0, 30m, 10d...")
@click.option("--match", type=click.Choice(["exact", "loose"]), default="exact", show_default=True,
              help="loose: event names match whatever their case, spaces and underscores "
                   "(completes_checkout triggers 'Completes checkout'); a dry run lists the rows matched so.")
def campaigns_add(name: str, event: str, delay: str, match: str) -> None:
    """Create or replace campaign NAME."""
    from worker.events.rules import Campaign
    from worker.timestamps import parse_duration

    try:
        seconds = parse_duration(delay) or 0
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--delay") from None
    if not event.strip() or not name.strip():
        raise click.BadParameter("a campaign needs a name and an event name (not empty)", param_hint="--event")
    from producers.text import check_text
    from worker.errors import ConfigError

    try:
        check_text("campaign name", name)
        check_text("--event", event)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    campaign = Campaign(name, event.strip(), seconds, match)
    cli_store().triggers.add_campaign(campaign)
    click.echo(f"campaign {campaign.name!r}: on {campaign.event!r} ({match} match), delay {seconds} s")
    if (campaign.name, campaign.event) != (name, event.strip()):
        click.echo("note: written decomposed (as macOS writes accents): kept in the composed form (NFC), "
                   "the form events' names are read in")


@campaigns.command("list")
@click.option("--json", "as_json", is_flag=True)
def campaigns_list(as_json: bool) -> None:
    """List campaigns."""

    found = sorted(cli_store().triggers.campaigns(), key=lambda c: c.name)
    if as_json:
        echo_json([{"name": c.name, "event": c.event, "delay_s": c.delay_s, "match": c.match} for c in found])
        return
    for c in found:
        click.echo(f"{c.name:<30} on {c.event!r:<30} {c.match:<6} delay {c.delay_s} s")


@campaigns.command("remove")
@click.argument("name")
def campaigns_remove(name: str) -> None:
    """Delete campaign NAME."""

    if not cli_store().triggers.remove_campaign(name):
        raise click.ClickException(f"no campaign {name!r}")
    click.echo(f"removed {name!r}")


