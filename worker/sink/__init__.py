"""The sink: the Redis streams are the outbox, a results database is the store of record."""
