"""Operations: the sweeper, poison chunks, reports, notifications and metrics."""
