"""cio_ids are never given twice, even when Redis's people sequence goes back: a host crash rolls its
append-only file back, a Redis restarted without persistence starts empty, while the results database
already holds the people created before. The sequence is floored by Redis's clock (worker/store/ids.py)."""
from __future__ import annotations

import re

from worker import keys
from worker.store.ids import cio_of

from .helpers import run_import, wait_until, write


def _cio_ids(store) -> set[str]:
    return {key.decode().rsplit(":", 1)[-1] for key in store.r.scan_iter(match=keys.person("*"), count=1000)}


def test_the_people_sequence_going_back_gives_no_cio_id_twice(store, workers, tmp_path):
    first = store.people.add("email", "ann@example.com")
    given_ms = store.now() * 1000
    assert re.fullmatch(r"a[0-9a-f]{12}", first)
    # A Redis that started again empty (its directory copy aside): a restart takes far more than the
    # millisecond the floor moves by (it counts a million numbers a second), which this waits out.
    wait_until(lambda: store.now() * 1000 > given_ms + 1, 5, "Redis's clock a millisecond on")
    store.r.delete(keys.PEOPLE_SEQ)
    second = store.people.add("email", "bob@example.com")
    assert second != first and second > first

    # an events import creating people, after the sequence went back by the numbers it gave
    before = int(store.r.get(keys.PEOPLE_SEQ))
    events = write(tmp_path, "e1.csv", "email,event_name\n" + "".join(f"p{n}@example.com,Seen\n" for n in range(30)))
    assert run_import(events, create_people=True)["imported"] == 30
    made = _cio_ids(store)
    store.r.set(keys.PEOPLE_SEQ, before)  # rolled back: the 30 numbers given are forgotten
    more = write(tmp_path, "e2.csv", "email,event_name\n" + "".join(f"q{n}@example.com,Seen\n" for n in range(30)))
    assert run_import(more, create_people=True)["imported"] == 30
    after = _cio_ids(store)
    assert len(after) == len(made) + 30  # 30 new people, none given an id another has

    # a people import, after the same
    store.r.set(keys.PEOPLE_SEQ, before)
    people = write(tmp_path, "p.csv", "id,email\n" + "".join(f"r{n},r{n}@example.com\n" for n in range(30)))
    assert run_import(people, kind="people")["imported"] == 30
    assert len(_cio_ids(store)) == len(after) + 30


def test_ids_made_before_the_floor_never_equal_new_ones():
    assert cio_of(1) == "a000000000001" and len(cio_of(2**47)) == 13
    assert all(len(f"{0xA0000000 + n:x}") == 8 for n in (1, 2**20))  # the former ids: "a" and 7 digits
