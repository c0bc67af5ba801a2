"""From outbox entries to the rows of one database transaction. Pure: no I/O.

An outbox entry (see :data:`worker.keys.OUTBOX`) carries one or more of: ``events`` (event JSONs
joined by "\\n") with ``cio`` (person key -> cio_id of the people they name), ``decisions`` (per
event, its trigger decisions), ``people`` (whole person states with their versions), ``keys`` and ``hours`` (the events' dedupe
keys and their window: see :mod:`worker.sink.claims`), ``ids`` (the
identifiers a people chunk gave people: [kind, identifier, cio_id]), ``sent`` (scheduled messages
sent at ``at``), ``record`` (a finished import). Each identifier a person is seen with (in a state or
in ``ids``) becomes an ``identifiers`` row, seen at the entry's time (its stream id's milliseconds).
:func:`batch_of` turns a batch of entries into rows per table, settling inside the batch what the
database would settle between batches (a person's highest version; a delivery sent beats the same
delivery scheduled), so every row key appears once in a transaction.
"""
from __future__ import annotations

import dataclasses
from datetime import datetime

import orjson

#: deliveries.state of a decision kind (the rules' names; "sent_now" is a message sent at once)
STATE = {"sent_now": "sent", "scheduled": "scheduled", "discarded": "discarded",
         "outside_window": "outside_window", "future": "future"}
PEOPLE_COLUMNS = ("cio_id", "id", "email", "created_at", "unsubscribed", "attributes", "topics", "version",
                  "import_id", "tags")
DELIVERY_COLUMNS = ("delivery_id", "import_id", "row", "campaign", "person_kind", "person", "event", "state",
                    "event_ms", "due_ms", "sent_ms")
#: the report's fields that are the import's options
OPTIONS = ("source", "kind", "dialect", "identifier", "trigger", "trigger_window_s", "dry_run", "create_people",
           "encoding", "delimiter", "timezone", "data_to_process", "empty_cells", "id_only")
IMPORT_COLUMNS = ("import_id", "kind", "source", "status", "created_ms", "finished_ms", "retry_of", "options",
                  "report")
EVENT_COLUMNS = ("import_id", "row", "person_kind", "person", "name", "ts_ms", "event_id", "data", "cio_id")
#: an event's dedupe key (10 bytes) and the event that holds it: the hour it was committed, the hour it expires
KEY_COLUMNS = ("dedupe_key", "import_id", "row", "seen_h", "expires_h")
#: the dedupe key of an event that has none
NO_KEY = b"\0" * 10
#: an identifier a person has or had (kind "id", "email" lowercased, or "anonymous") and when it was seen so
IDENTIFIER_COLUMNS = ("kind", "value", "cio_id", "first_ms", "last_ms")


@dataclasses.dataclass(slots=True)
class Batch:
    """What one transaction writes, and what each entry holds (for the acknowledgement's counters)."""

    events: list[tuple] = dataclasses.field(default_factory=list)
    people: dict[str, tuple] = dataclasses.field(default_factory=dict)
    deliveries: dict[str, tuple] = dataclasses.field(default_factory=dict)
    imports: list[tuple] = dataclasses.field(default_factory=list)
    #: (kind, identifier, cio_id) -> its identifiers row
    identifiers: dict[tuple[str, str, str], tuple] = dataclasses.field(default_factory=dict)
    #: per entry: (entry id, import id or "", events, people, deliveries)
    entries: list[tuple[bytes, str, int, int, int]] = dataclasses.field(default_factory=list)
    #: the events' dedupe keys, as :data:`KEY_COLUMNS` (events with none have no row here)
    keys: list[tuple] = dataclasses.field(default_factory=list)
    #: the index in :attr:`entries` of the entry each of :attr:`keys` came from
    key_entries: list[int] = dataclasses.field(default_factory=list)
    #: entry id -> its events the database already held under another row (late duplicates), filled
    #: in by the backend's write
    late: dict[bytes, int] = dataclasses.field(default_factory=dict)


def imports_of(batch: Batch) -> set[str]:
    """The imports whose events, deliveries or records a batch writes."""
    return ({row[0] for row in batch.events} | {row[1] for row in batch.deliveries.values()}
            | {row[0] for row in batch.imports})


def without(batch: Batch, gone: set[str]) -> Batch:
    """``batch`` without the events and unsent deliveries of the imports ``gone`` (taken back by an undo)."""
    if not gone:
        return batch
    state, status = DELIVERY_COLUMNS.index("state"), IMPORT_COLUMNS.index("status")
    kept = [(k, e) for k, e in zip(batch.keys, batch.key_entries) if k[1] not in gone]
    return dataclasses.replace(
        batch, events=[r for r in batch.events if r[0] not in gone],
        keys=[k for k, _ in kept], key_entries=[e for _, e in kept],
        # a trigger sent stays recorded (it happened); an import's record says it was undone
        deliveries={k: r for k, r in batch.deliveries.items() if r[1] not in gone or r[state] == "sent"},
        imports=[(*r[:status], "undone", *r[status + 1:]) if r[0] in gone else r for r in batch.imports])


def batch_of(entries: list[tuple[bytes, dict[bytes, bytes]]]) -> Batch:
    """The rows of these entries, one transaction's worth."""
    batch = Batch()
    for entry_id, fields in entries:
        import_id = fields.get(b"import", b"").decode()
        n_events = n_people = n_deliveries = 0
        seen_ms = int(entry_id.split(b"-", 1)[0])
        if fields.get(b"events"):
            rows = event_rows(fields[b"events"], orjson.loads(fields[b"cio"]) if b"cio" in fields else {})
            batch.events += rows
            n_events = len(rows)
            if b"keys" in fields:
                found = key_rows(rows, fields[b"keys"], fields[b"hours"])
                batch.keys += found
                batch.key_entries += [len(batch.entries)] * len(found)
        if b"decisions" in fields:
            for decision in _decisions(orjson.loads(fields[b"decisions"])):
                _merge_delivery(batch.deliveries, decision)
                n_deliveries += 1
        if b"sent" in fields:
            at = int(fields[b"at"])
            for message in orjson.loads(fields[b"sent"]):
                _merge_delivery(batch.deliveries, delivery_row(message, "sent", _ms(message.get("due")), at))
                n_deliveries += 1
        if b"people" in fields:
            for state in orjson.loads(fields[b"people"]):
                row = person_row(state, import_id)
                held = batch.people.get(row[0])
                if held is None or held[7] < row[7]:
                    batch.people[row[0]] = row
                n_people += 1
                # every state's identifiers, not only the newest's: an id or e-mail changed since is kept
                if row[1]:
                    _merge_identifier(batch.identifiers, "id", row[1], row[0], seen_ms)
                if row[2]:
                    _merge_identifier(batch.identifiers, "email", row[2].lower(), row[0], seen_ms)
        if b"ids" in fields:
            for kind, value, cio in orjson.loads(fields[b"ids"]):
                _merge_identifier(batch.identifiers, kind, value, cio, seen_ms)
        if b"record" in fields:
            batch.imports.append(import_row(orjson.loads(fields[b"record"])))
        batch.entries.append((entry_id, import_id, n_events, n_people, n_deliveries))
    return batch


def event_rows(events: bytes, cio: dict[str, str]) -> list[tuple]:
    """The ``events`` rows of an entry's events (JSON texts joined by "\n": JSON text holds no raw newline,
    so the entry parses as one array), each with its person's cio_id from ``cio`` (person key -> cio_id;
    None for an entry without it: committed before the outbox carried them). E-mails are stored
    lowercased, as the directory keys them (and as ``cio`` names them)."""
    rows: list[tuple] = []
    append, dumps = rows.append, orjson.dumps
    for event in orjson.loads(b"[" + events.replace(b"\n", b",") + b"]"):
        person = event["person"]
        email = person.get("email")
        if email is not None:
            kind, who = "email", email.lower()
        else:
            [(kind, who)] = person.items()
        ts = event["timestamp"]
        append((event["import"], event["row"], kind, who, event["name"],
                ts * 1000 if type(ts) is int else round(ts * 1000), event.get("id"), dumps(event["data"]).decode(),
                cio.get(who)))
    return rows


def key_rows(events: list[tuple], keys: bytes, hours: bytes) -> list[tuple]:
    """The ``event_keys`` rows of an entry's events (``keys``: their 10-byte dedupe keys in order, ten zero
    bytes for none; ``hours``: "<committed>:<expires>", hours since the epoch)."""
    if len(keys) != 10 * len(events):
        raise ValueError(f"{len(keys) // 10} dedupe keys for {len(events)} events")
    seen_h, expires_h = (int(h) for h in hours.split(b":"))
    found = [(keys[at:at + 10], row[0], row[1], seen_h, expires_h) for row, at in zip(events, range(0, len(keys), 10))]
    return [k for k in found if k[0] != NO_KEY] if NO_KEY[:5] in keys else found


def person_row(state: dict[str, str], import_id: str) -> tuple:
    """A ``people`` row from a person's flat state (see worker.people.directory)."""
    attributes = {k[2:]: v for k, v in state.items() if k.startswith("a:")}
    topics = {k[2:]: v == "true" for k, v in state.items() if k.startswith("t:")}
    unsubscribed = state.get("unsubscribed")
    created = state.get("created_at")
    return (state["cio_id"], state.get("id"), state.get("email"),
            int(float(created)) if created not in (None, "") else None,
            None if unsubscribed in (None, "") else int(unsubscribed == "true"),
            orjson.dumps(attributes).decode(), orjson.dumps(topics).decode(), int(state.get("_v") or 1),
            import_id or None, state.get("tags") or None)


def delivery_row(message: dict, state: str, due_ms: int | None, sent_ms: int | None) -> tuple:
    """A ``deliveries`` row from a trigger message (see worker.events.chunk)."""
    [(kind, person)] = message["person"].items()
    return (message["delivery_id"], message["import"], message["row"], message["campaign"], kind,
            person.lower() if kind == "email" else person, message["event"], state,
            _ms(message.get("event_time")), due_ms, sent_ms)


def import_row(record: dict) -> tuple:
    """An ``imports`` row from a finished import's record (see worker.store.imports)."""
    report = record["report"]
    options = {k: report[k] for k in OPTIONS if k in report}
    return (record["import_id"], report.get("kind"), report.get("source"), record["status"],
            record.get("created_ms"), record.get("finished_ms"), record.get("retry_of"),
            orjson.dumps(options).decode(), orjson.dumps(report).decode())


def _decisions(per_event: list[list]) -> list[tuple]:
    """The deliveries rows of an entry's ``decisions``: per event, its [kind, due_ms, message] actions. The
    message is an object, or, in an entry written before it was, the same object as a JSON string."""
    rows = []
    loads = orjson.loads
    for actions in per_event:
        for kind, due_ms, message in actions:
            if type(message) is str:
                message = loads(message)
            state = STATE[kind]
            rows.append(delivery_row(message, state, due_ms or None, due_ms if state == "sent" else None))
    return rows


def _merge_identifier(held: dict[tuple[str, str, str], tuple], kind: str, value: str, cio: str, ms: int) -> None:
    """Keep one row per (kind, identifier, person), seen from the earliest to the latest time."""
    key = (kind, value, cio)
    current = held.get(key)
    held[key] = (kind, value, cio, ms, ms) if current is None else \
        (kind, value, cio, min(current[3], ms), max(current[4], ms))


def _merge_delivery(held: dict[str, tuple], row: tuple) -> None:
    """Keep one row per delivery: "sent" wins over "scheduled" (the order entries arrive in is not theirs)."""
    current = held.get(row[0])
    if current is None or (current[7] == "scheduled" and row[7] == "sent"):
        held[row[0]] = row


def _ms(iso: str | None) -> int | None:
    if not iso:
        return None
    return round(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)
