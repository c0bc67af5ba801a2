"""A person read back, for the interfaces alike: ``backfill people show`` and ``GET /v1/people/{who}``.

The results database answers first; a person not stored there yet is read from the directory in Redis.
"""
from __future__ import annotations

import orjson

from worker.context import Context
from worker.settings import Settings


def find_person(context: Context, who: str, by: str | None) -> tuple[dict[str, str] | None, str]:
    """(a person in the directory's flat form, or None; a note when read from Redis because the results
    database could not answer): the results database first, then the directory in Redis. ``who`` is
    compared composed (NFC), as identifiers are stored: ``café@example.com`` pasted from a Mac finds them."""
    from worker.cells import nfc

    who = nfc(who.strip())
    stored, note = _from_database(context.settings, who, by)
    if stored is None:
        stored = context.store.people.find(who, by)
    return stored, note if stored is not None else ""


def person_json(context: Context, who: str, by: str | None) -> dict | None:
    """A person as ``people show --json`` prints them (and the HTTP service answers), or None."""
    stored, _ = find_person(context, who, by)
    return None if stored is None else typed(stored)


def typed(stored: dict[str, str]) -> dict:
    """A flat person typed as the values mean: created_at in Unix seconds, unsubscribed a boolean."""
    identifiers = {k: stored[k] for k in ("cio_id", "id", "email") if k in stored}
    reserved = {**({"created_at": int(float(stored["created_at"]))} if stored.get("created_at") else {}),
             **({"unsubscribed": stored["unsubscribed"] == "true"} if "unsubscribed" in stored else {})}
    return {**identifiers, **reserved, **({"tags": orjson.loads(stored["tags"])} if stored.get("tags") else {}),
            "attributes": {k[2:]: v for k, v in sorted(stored.items()) if k.startswith("a:")},
            "topics": {k[2:]: v == "true" for k, v in sorted(stored.items()) if k.startswith("t:")}}


def _from_database(settings: Settings, who: str, by: str | None) -> tuple[dict[str, str] | None, str]:
    """(the person in the results database as a directory entry, or None; why not, when not)."""
    from worker.sink.results import open_results

    try:
        results = open_results(settings)
        try:
            results.check()
            for kind in [by] if by else ["cio_id", "id", "email"]:
                found = results.people(kind, who)
                if found:
                    return _flat(found[0]), ""
            found = results.people_known_as(who, by)  # an identifier they had
            if found:
                return _flat(found[0]), ""
        finally:
            results.close()
    except Exception as exc:  # noqa: BLE001 - the directory still answers; the note says why
        return None, f"the results database cannot be read ({exc})"
    return None, "not in the results database yet"


def _flat(person: dict) -> dict[str, str]:
    """A stored person in the directory's flat form (see worker.people.directory)."""
    flat = {k: str(person[k]) for k in ("cio_id", "id", "email", "created_at") if person.get(k) is not None}
    if person.get("unsubscribed") is not None:
        flat["unsubscribed"] = "true" if person["unsubscribed"] else "false"
    flat.update({"a:" + k: v for k, v in person["attributes"].items()})
    flat.update({"t:" + k: "true" if v else "false" for k, v in person["topics"].items()})
    if person.get("tags"):
        flat["tags"] = orjson.dumps(person["tags"]).decode()
    return flat
