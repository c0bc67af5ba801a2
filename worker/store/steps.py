"""Which commit of a chunk a commit script runs: the chunk's only one, or one of a Segment chunk's two.

A Segment chunk is committed in two atomic steps (:mod:`worker.segment.pipeline`): its events by
commit.lua (:attr:`CommitStep.EVENTS`), then its person changes by people_commit.lua
(:attr:`CommitStep.PEOPLE`, which commits the chunk itself). Every other chunk is committed once
(:attr:`CommitStep.WHOLE`). How a step is written for Redis is here and nowhere else.
"""
from __future__ import annotations

import enum


class CommitStep(enum.Enum):
    """One commit of a chunk; each is made exactly once (its member enters the import's done-set)."""

    #: the chunk's one commit (an events or a people chunk)
    WHOLE = "whole"
    #: a Segment chunk's first step: its events (commit.lua); its rows stay stored for the second
    EVENTS = "events"
    #: a Segment chunk's second step: its person changes (people_commit.lua), which commits the chunk
    PEOPLE = "people"

    def member(self, chunk: int) -> str:
        """The step's member of the import's done-set: the chunk's number, and for the events step of a
        Segment chunk the number and "e" (its own member: a crash between the steps redoes only the second)."""
        return f"{chunk}e" if self is CommitStep.EVENTS else str(chunk)

    def state(self, whole_state: str) -> str:
        """The commit scripts' chunk-state argument (lib.lua: chunk_state) for this step: "p" for the
        events step (its rows are counted, the chunk is not done yet), else ``whole_state``
        (:func:`worker.store.work.chunk_state`)."""
        return "p" if self is CommitStep.EVENTS else whole_state
