"""A seeded archive of mixed Segment messages and what importing it must give (the oracle).

Used by the integration tests and by ``bench/segment.py``. The oracle applies the Vero
destination's rules in file order with plain dictionaries, knowing nothing of chunks.
"""
from __future__ import annotations

import dataclasses
import gzip
import random
from pathlib import Path

import orjson


@dataclasses.dataclass
class Expected:
    rows: int = 0
    imported: int = 0
    duplicates: int = 0
    errors: int = 0
    #: event names of the events imported, counted
    events: dict[str, int] = dataclasses.field(default_factory=dict)
    #: userId -> the person's id after aliases (who they are now)
    current: dict[str, str] = dataclasses.field(default_factory=dict)
    #: person (current id) -> last "plan" trait, tags, unsubscribed
    plan: dict[str, str] = dataclasses.field(default_factory=dict)
    tags: dict[str, set] = dataclasses.field(default_factory=dict)
    unsubscribed: set = dataclasses.field(default_factory=set)
    #: anonymous events still held at the end (their anonymous id never tied to a person); tied ones
    #: are in ``events`` (how many were held on the way depends on chunking, not this number)
    held_left: int = 0
    #: anonymous id -> the userId an identify tied it to
    tied: dict[str, str] = dataclasses.field(default_factory=dict)


def messages(count: int, seed: int = 7, people: int = 300) -> tuple[list[str], Expected]:
    """``count`` lines of Segment messages (some bad, some sent twice) and the oracle's outcome."""
    rng = random.Random(seed)
    lines: list[str] = []
    sent: list[str] = []
    ex = Expected()
    current = {f"u{n}": f"u{n}" for n in range(people)}
    known_ids = set(current)
    aliased = 0
    held: dict[str, list[str]] = {}  # anonymous id -> names of the events held for it

    def who() -> str:
        return rng.choice(list(current))

    for n in range(count):
        roll = rng.random()
        at = f"2024-03-{1 + n % 28:02}T{n % 24:02}:{n % 60:02}:00.000Z"
        uid = who()
        if roll < 0.05 and sent:  # the same message again (a client's retry)
            lines.append(rng.choice(sent))
            ex.duplicates += 1
            continue
        if roll < 0.08:
            lines.append(rng.choice(['{"type": "track", "userId": ', "not json",
                                     orjson.dumps({"type": "purchase", "userId": uid}).decode(),
                                     orjson.dumps({"type": "identify", "anonymousId": f"a{n}"}).decode(),
                                     orjson.dumps({"type": "track", "userId": uid, "event": "X",
                                                   "timestamp": "soon"}).decode()]))
            ex.errors += 1
            continue
        message: dict = {"messageId": f"m{n}", "userId": uid, "timestamp": at}
        person = current[uid]
        anon = f"anon{rng.randrange(people // 4)}"  # (only the first half of them ever log in)
        if roll < 0.11:  # an anonymous visitor's event: held, or the person's once the id is tied
            name = rng.choice(["Viewed Product", "Added to Cart"])
            message = {"messageId": f"m{n}", "anonymousId": anon, "timestamp": at, "type": "track", "event": name}
            if anon in ex.tied:
                ex.events[name] = ex.events.get(name, 0) + 1
            else:
                held.setdefault(anon, []).append(name)
        elif roll < 0.40:
            name = rng.choice(["Completed Order", "Viewed Product", "Signed Up"])
            message.update(type="track", event=name, properties={"n": n, "sku": f"S{n % 13}"})
            ex.events[name] = ex.events.get(name, 0) + 1
        elif roll < 0.50:
            message.update(type="page", name="Pricing", properties={"path": "/pricing"})
            ex.events["Viewed Pricing Page"] = ex.events.get("Viewed Pricing Page", 0) + 1
        elif roll < 0.55:
            message.update(type="screen", name="Home")
            ex.events["Viewed Home Screen"] = ex.events.get("Viewed Home Screen", 0) + 1
        elif roll < 0.80:
            plan = rng.choice(["free", "pro", "team"])
            message.update(type="identify", traits={"plan": plan, "seen": n})
            ex.plan[person] = plan
            if rng.random() < 0.2:  # the visitor logs in: their anonymous events become theirs
                anon = f"anon{rng.randrange(people // 8)}"
                message["anonymousId"] = anon
                if anon not in ex.tied:
                    ex.tied[anon] = uid
                    for name in held.pop(anon, []):
                        ex.events[name] = ex.events.get(name, 0) + 1
            if rng.random() < 0.3:
                action, values = rng.choice(["add", "add", "remove"]), rng.sample(["a", "b", "c", "d"], 2)
                message["integrations"] = {"Vero": {"tags": {"action": action, "values": values}}}
                tags = ex.tags.setdefault(person, set())
                tags.update(values) if action == "add" else tags.difference_update(values)
        elif roll < 0.88:
            message.update(type="group", groupId=f"g{n % 5}", traits={"name": f"Group {n % 5}"})
        elif roll < 0.90 and aliased < people // 10:
            new = f"v{n}"
            message.update(type="alias", previousId=person)
            message["userId"] = new
            for old, now in current.items():  # every identifier of that person now names the new id
                if now == person:
                    current[old] = new
            current[new] = new
            known_ids.add(new)
            for table in (ex.plan, ex.tags):
                if person in table:
                    table[new] = table.pop(person)
            if person in ex.unsubscribed:
                ex.unsubscribed.discard(person)
                ex.unsubscribed.add(new)
            aliased += 1
        elif roll < 0.92:
            message.update(type="track", event="Unsubscribe", properties={"id": uid})
            ex.unsubscribed.add(person)
        else:
            name = "Completed Order"
            message.update(type="track", event=name, properties={"n": n})
            ex.events[name] = ex.events.get(name, 0) + 1
        text = orjson.dumps(message).decode()
        lines.append(text)
        ex.imported += 1
        if message["type"] in ("track", "page", "screen") and message.get("event") != "Unsubscribe":
            sent.append(text)
    ex.rows = count
    ex.current = current
    ex.held_left = sum(len(names) for names in held.values())
    return lines, ex


def write_archive(path: Path, lines: list[str]) -> Path:
    """An archive as Segment writes them: gzipped, one message a line."""
    with gzip.open(path, "wb") as out:
        out.write(("\n".join(lines) + "\n").encode())
    return path
