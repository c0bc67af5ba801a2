"""``backfill``: import CSV files of events, watch them, read their reports.

Exit codes of ``import --wait``: 0 every row imported (duplicates included),
4 finished with row errors, 1 failed (nothing imported), 5 cancelled or
interrupted (part imported), 3 ``--timeout`` ran out while the import goes on. Other commands: 0 on success, 1 on error, 2 on
bad usage.
"""
from __future__ import annotations

import os

import click

from producers.cli import directory, http, imports, progress, results, service
from producers.cli.common import Entry


class _Backfill(click.Group):
    """The command group: a Redis that does not answer, or a wrong setting, is one line, not a traceback."""

    def invoke(self, ctx: click.Context):
        from worker.errors import ConfigError, ImportNotFound, RedisMisconfigured, ResultsUnavailable
        from worker.settings import Settings
        from worker.store import TRANSIENT

        try:
            # The entry point: the settings read once, passed down (producers.cli.common.Entry). On a laptop
            # with no REDIS_URL, the command uses (and starts) the embedded server; workers do only when
            # asked (backfill worker --embedded), so they never serve a private Redis by mistake.
            ctx.obj = Entry(Settings.from_env(defaults={"embedded": True}))
            return super().invoke(ctx)
        except ResultsUnavailable as exc:
            raise click.ClickException(str(exc)) from None
        except TRANSIENT as exc:
            url = os.environ.get("REDIS_URL") or "the embedded server (REDIS_URL is not set)"
            raise click.ClickException(f"Redis did not answer at {url}: {exc}") from None
        except (ConfigError, RedisMisconfigured, ImportNotFound) as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Backfill)
@click.version_option(package_name="backfill")
def main() -> None:
    """Import CSV files of customer events into the messaging platform's store."""


for command in (imports.import_, imports.retry, imports.undo, imports.inspect_, imports.cancel, progress.status, progress.top, progress.report, progress.errors,
                progress.warnings, directory.people, directory.campaigns, service.worker, service.metrics,
                service.demo, results.sink, results.db, results.events, http.serve, http.keys):
    main.add_command(command)

if __name__ == "__main__":
    main()
