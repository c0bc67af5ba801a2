"""Chunks applied in file order under a lease (people and Segment alike): :mod:`worker.ordered.apply`."""
