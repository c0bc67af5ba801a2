"""Tasks and helpers for `make bench` only (loaded into bench workers with ``-I bench.tasks``)."""
