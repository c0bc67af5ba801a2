"""Operations: the delivery guard (retries, poison chunks), the sweeper, reports, notifications and metrics."""
