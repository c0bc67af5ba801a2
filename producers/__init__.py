"""backfill producers: turn a file into an import (open, sniff, split, enqueue), and the interfaces over it.

- the modules here are the producer: ``source``, ``sniff``, ``mojibake``, ``records``, ``split``, ``spool``,
  ``segment``, ``queueing``, ``options``, ``text``; ``api`` is the Python API over it and the store (enqueue,
  poll, cancel, retry, undo), ``lookup`` a person read back, ``demo`` what ``make demo`` runs;
- ``cli/`` is one interface: the ``backfill`` command;
- ``web/`` is the other: the HTTP service (``backfill serve``), one router a resource. It never imports the
  CLI: what both need lives in the modules above.

Operations on stored data are the worker's (an undo is :mod:`worker.ops.undo`); nothing in ``worker`` imports
``producers``.
"""
