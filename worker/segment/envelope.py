"""Segment's batch envelope and what its messages take from it. Pure: no I/O.

A batch is ``{"batch": [messages], "sentAt": ..., "context": {...}, "integrations": {...}}``: the
body of ``POST /v1/batch``, and a line or the whole document of an archive that logged such
bodies. Segment's libraries put ``sentAt`` (the sender's clock when the request left) on the
envelope only, so a message read without it could not have its clock corrected
(:func:`worker.segment.messages.event_time`). Segment's HTTP API documents the envelope's
``context`` and ``integrations`` as merged with each message's own.
"""
from __future__ import annotations

#: The envelope's objects merged under each message's own (Segment's batch endpoint does so).
MERGED = ("context", "integrations")


def is_envelope(data: object) -> bool:
    """True for a batch envelope: an object with a ``batch`` list and no call ``type`` of its own."""
    return isinstance(data, dict) and isinstance(data.get("batch"), list) and "type" not in data


def with_envelope(message: object, envelope: dict) -> object:
    """The message as its batch gives it (changed in place, and returned): the envelope's ``sentAt``
    when it has none (null or "" count as none); the envelope's ``context`` and ``integrations``
    under its own, one level deep (a key the message has wins whole: its ``context.traits`` replaces
    the envelope's, never mixed with it). A message that is no object is returned as it is (the
    worker says what it is)."""
    if not isinstance(message, dict):
        return message
    sent = envelope.get("sentAt")
    if sent not in (None, "") and message.get("sentAt") in (None, ""):
        message["sentAt"] = sent
    for name in MERGED:
        shared = envelope.get(name)
        if shared is None:
            continue
        own = message.get(name)
        if own is None:
            message[name] = shared
        elif isinstance(own, dict) and isinstance(shared, dict):
            message[name] = {**shared, **own}
    return message


def messages(envelope: dict) -> list:
    """The envelope's messages, each :func:`with_envelope`."""
    return [with_envelope(message, envelope) for message in envelope["batch"]]
