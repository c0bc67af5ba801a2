"""backfill producers: turn a file into an import (open, sniff, split, enqueue)."""
