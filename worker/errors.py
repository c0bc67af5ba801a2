"""The one root exception of backfill, and its two families.

Row problems are data (see ``worker.events.rows.Problem``), never exceptions. These are
for everything else: a file that cannot be imported, a setting that is wrong, a
service that did not answer.
"""
from __future__ import annotations


class BackfillError(Exception):
    """Root of every exception backfill raises on purpose."""


class PermanentError(BackfillError):
    """Retrying cannot help: the input or the configuration is wrong."""


class TransientError(BackfillError):
    """Retrying may help: a service was unreachable or busy."""


class ResultsUnavailable(TransientError):
    """The results database did not answer (the sink retries; a command says so in one line)."""


class ResultsRefused(PermanentError):
    """The results database refused a batch for what it holds (a NUL in a text, a number out of range, a
    value over one of its limits): written again unchanged, it fails again. The sink finds the entry it
    refuses and sets it aside as a dead letter (worker/sink/split.py)."""


class ConfigError(PermanentError):
    """A setting is invalid."""


class FileProblem(PermanentError):
    """The file as a whole cannot be imported; nothing of it was queued.

    ``code`` is stable and machine-readable; ``str()`` is the sentence for a person.
    """

    def __init__(self, code: str, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.line = line


class RedisMisconfigured(PermanentError):
    """Redis is set up in a way that would silently lose or double rows (a memory policy that evicts
    keys): every process that writes refuses to work on it, saying how to fix it in one line."""


class ImportNotFound(PermanentError):
    """No import has that id (or its records expired)."""
