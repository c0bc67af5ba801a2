"""The events core: dialects, row validation, trigger rules, and the chunk pipeline."""
