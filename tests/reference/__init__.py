"""Reference implementations the production code is checked against (differential tests)."""
