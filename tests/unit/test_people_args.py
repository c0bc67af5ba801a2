"""people_commit.lua's KEYS and ARGV as worker/store/people_args.py lays them out: the names the script
binds, and the packed sections cut where ``ends`` says. No Redis."""
from __future__ import annotations

import re
import struct
from pathlib import Path

from worker import keys
from worker.people.directory import Changes
from worker.segment.anonymous import Attach
from worker.store.people_args import PACKED, PeopleCommitArgs, PeopleCommitKeys

LUA = (Path(__file__).resolve().parents[2] / "worker" / "store" / "scripts" / "people_commit.lua").read_text()


def _lua_names(table: str) -> list[str]:
    found = re.search(r"local " + table + r" = \{([^}]*)\}", LUA)
    assert found, table
    return re.findall(r"'(\w+)'", found.group(1))


def _args() -> PeopleCommitArgs:
    changes = Changes(imported=2, created=1)
    changes.seen[b"e\x00\xff" + bytes(6)] = "2"
    changes.index[("email", "zoë@example.com")] = ("", "a1")
    changes.index[("id", "7")] = ("a0", "")
    changes.people["a1"] = ("", {"cio_id": "a1", "email": "Zoë@example.com", "_v": "1"})
    attach = Attach(ties=[("anon-1", 2, b'{"e":2}', "u1")], bodies=[b'{"e":1}'], outcomes=["passive"],
                    owners={"u1": "a1"})
    return PeopleCommitArgs(4, False, 1_700_000_000_000, keys.person(""), 60, 600, "imp1", "0", 0, changes,
                            [b'{"row":2}'], [b'{"row":3}', b'{"row":4}'], attach)


def _cut(fixed: dict[str, object]) -> list[bytes]:
    """The items as the script cuts them: each ends where its uint32 in ``ends`` says."""
    items, ends = fixed["items"], fixed["ends"]
    assert isinstance(items, bytes) and isinstance(ends, bytes)
    out, start = [], 0
    for (end,) in struct.iter_unpack("<I", ends):
        out.append(items[start:end])
        start = end
    return out


def test_the_script_binds_every_key_and_fixed_argument_by_the_builders_names_in_its_order():
    assert _lua_names("KEY_NAMES") == list(PeopleCommitKeys.__dataclass_fields__)
    assert _lua_names("ARGV_NAMES") == list(_args().fixed())
    assert len(PeopleCommitKeys.of("imp1", 4, "x", "y").layout()) == len(_lua_names("KEY_NAMES"))


def test_the_sections_are_packed_in_order_and_cut_back_whole_whatever_their_bytes():
    args = _args()
    fixed = args.fixed()
    assert [fixed[f"n_{name}"] for name, _ in PACKED] == [1, 2, 1, 1, 1, 0]  # (a passive event: no campaign)
    assert _cut(fixed) == [
        b"e\x00\xff" + bytes(6), b"2",
        b"email", "zoë@example.com".encode(), b"", b"a1", b"id", b"7", b"a0", b"",
        b"a1", b"", '{"cio_id":"a1","email":"Zoë@example.com","_v":"1"}'.encode(),
        b"anon-1", b"2", b'{"e":2}', b"u1",
        b'{"e":1}', b"passive",
    ]
    assert fixed["given_ids"] == b'[["email","zo\xc3\xab@example.com","a1"],["anonymous","anon-1","a1"]]'
    argv = args.layout()
    assert argv[len(fixed):] == [b'{"row":2}', b'{"row":3}', b'{"row":4}']
    assert (fixed["n_errors"], fixed["n_warnings"]) == (1, 2)


def test_the_moved_events_decisions_are_counted_by_kind_and_campaign_after_them():
    args = _args()
    decided = b'[["scheduled",5,{"delivery_id":"imp0:2:nudge","campaign":"nudge","event":"Viewed"}],\n' \
              b'["sent_now",0,{"delivery_id":"imp0:2:welcome","campaign":"welcome","event":"Viewed"}]]'
    args.attach.bodies.append(b'{"e":3}')
    args.attach.outcomes.append(decided)
    fixed = args.fixed()
    assert (fixed["n_moved"], fixed["n_campaigns"]) == (2, 2)
    assert _cut(fixed)[-4:] == [b"scheduled:nudge", b"1", b"sent_now:welcome", b"1"]


def test_an_empty_chunk_packs_nothing():
    fixed = PeopleCommitArgs(0, True, 0, "p:", 60, 600, "imp1", "c3", 0, Changes(), [], []).fixed()
    assert (fixed["items"], fixed["ends"], fixed["given_ids"]) == (b"", b"", "")
