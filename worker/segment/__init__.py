"""Segment-spec messages (identify, track, page, screen, group, alias) as a source of people and events."""
