"""backfill worker: the Celery app, the pure import core and the Redis store."""
