"""commit.lua's KEYS and ARGV as worker/store/commit_args.py lays them out: the names the script binds,
the sections where their ``*_at`` says, and the shard names the worker sends. No Redis."""
from __future__ import annotations

import re
import struct
from pathlib import Path

import orjson

from worker import keys
from worker.events import rules
from worker.events.chunk import ID_RECORD, NO_KEY, NO_MEMORY, ChunkOutcome, trigger_outcome
from worker.events.rows import Event
from worker.spec import ImportSpec
from worker.store.commit_args import OUTCOME_CODES, SECTIONS, CommitArgs, CommitKeys, by_campaign, mark_records
from worker.store.events import _slot

LUA = (Path(__file__).resolve().parents[2] / "worker" / "store" / "scripts" / "commit.lua").read_text()


def _lua_names(table: str) -> list[str]:
    """The names in commit.lua's ``local <table> = {...}``."""
    found = re.search(r"local " + table + r" = \{([^}]*)\}", LUA)
    assert found, table
    return re.findall(r"'(\w+)'", found.group(1))


def _args(outcome: ChunkOutcome, **more: object) -> CommitArgs:
    fields: dict = dict(member="3", dry_run=False, now_ms=1_700_000_000_000, expiry_h=472_300, shard_bits=16,
                        import_id="imp1", identifier="email", state="0", problem_ttl_s=60, ids_ttl_s=86_400,
                        max_problem_rows=0, known=b"{}", outcome=outcome)
    return CommitArgs(**{**fields, **more})


def _outcome() -> ChunkOutcome:
    out = ChunkOutcome([b'{"row":2}', b'{"row":3}'], [b'{"row":4}'], [("a@x.co", "a@x.co")])
    key = bytes(range(1, 11))
    out.keys += key + NO_KEY
    out.bodies += b'{"import":"imp1","row":5}\n{"import":"imp1","row":6}'
    out.ends += [26, 53]
    out.outcomes += ["passive", "passive"]
    out.ids += ID_RECORD.pack(1, b"0472300tttt", b"v" * 12, b"f" * 8, NO_MEMORY)
    out.anonymous.append((key, "anon-1", b"{}"))
    return out


def test_the_script_binds_every_key_and_fixed_argument_by_the_builders_names_in_its_order():
    fixed = list(_args(_outcome()).fixed([0] * len(SECTIONS)))
    assert _lua_names("KEY_NAMES") == [f for f in CommitKeys.__dataclass_fields__]
    assert _lua_names("ARGV_NAMES") == fixed
    header = LUA.split("local KEY_NAMES")[0]
    documented = set(re.findall(r"^--   (\w+)\s", header, re.M))
    assert set(_lua_names("KEY_NAMES")) | set(fixed) - {f"{s}_at" for s in SECTIONS} | set(SECTIONS) <= documented


def test_keys_are_laid_out_in_field_order():
    laid = CommitKeys.of("imp1", 7, "id").layout()
    assert len(laid) == len(_lua_names("KEY_NAMES"))
    assert laid[:3] == [keys.import_hash("imp1"), keys.import_done("imp1"), keys.import_chunk("imp1", 7)]
    assert laid[8] == keys.people_index("id") and laid[13] == keys.import_event_ids("imp1")


def test_each_section_starts_where_its_argument_says_with_its_count():
    args = _args(_outcome())
    argv = args.layout()
    fixed = args.fixed([0] * len(SECTIONS))
    at = {name: argv[list(fixed).index(f"{name}_at")] for name in SECTIONS}
    lua = lambda n: argv[n - 1]  # noqa: E731  (ARGV as Lua counts)
    assert [lua(at["errors"]), lua(at["errors"] + 1), lua(at["errors"] + 2)] == [2, b'{"row":2}', b'{"row":3}']
    assert [lua(at["warnings"]), lua(at["warnings"] + 1)] == [1, b'{"row":4}']
    assert [lua(at["ids"]), lua(at["ids"] + 1)] == [1, b"\1\0\0\0" + b"0472300tttt" + b"v" * 12 + b"f" * 8 + NO_MEMORY]
    assert [lua(at["create"]), lua(at["create"] + 1), lua(at["create"] + 3)] == [1, "a@x.co", b'"a@x.co"']
    events = argv[at["events"] - 1:at["anonymous"] - 1]
    assert events[0] == 2 and events[5] == "passive" and len(events) == 6
    prefix = keys.DEDUPE_PREFIX.encode()
    assert events[1] == prefix + bytes(range(1, 11)) + prefix + NO_KEY and events[2] == bytes(range(1, 11)) + NO_KEY
    assert struct.unpack("<2I", events[4]) == (26, 53)
    assert argv[at["anonymous"] - 1:at["campaigns"] - 1] == [1, keys.ANONYMOUS_PREFIX, 0, bytes(range(1, 11)),
                                                           "anon-1", b"{}"]
    assert argv[at["campaigns"] - 1:] == [0]  # no decisions: no campaign counted


def test_a_chunk_with_its_own_outcome_per_event_sends_a_code_each_then_only_the_decisions():
    out = _outcome()
    out.outcomes[1:] = [b'[["sent_now",0,{}]]', "no_campaign", b'[["scheduled",5,{}]]']
    out.keys += NO_KEY * 2
    argv = _args(out).layout()
    # (then the anonymous and campaigns sections)
    assert argv[-11:-7] == ["", bytes([1, 0, 4, 0]), b'[["sent_now",0,{}]]', b'[["scheduled",5,{}]]']


def test_the_scripts_outcome_codes_are_the_rules_outcomes_in_order():
    assert _lua_names("OUTCOME_NAMES") == list(rules.OUTCOMES)
    assert OUTCOME_CODES == {name: n for n, name in enumerate(_lua_names("OUTCOME_NAMES"), 1)}


def test_a_mark_record_is_the_prefix_then_the_key_so_it_holds_the_shard_and_then_the_field():
    packed = b"".join(bytes((n, 255 - n, n * 7 % 256)) + bytes(7) for n in range(40)) + NO_KEY
    records = mark_records(bytearray(packed))
    size = len(keys.DEDUPE_PREFIX) + 10
    assert len(records) == 41 * size and mark_records(b"") == b""
    for n in range(41):
        record, key = records[n * size:(n + 1) * size], packed[n * 10:(n + 1) * 10]
        shard, field = _slot(key, 16)
        assert record[:size - 8] == shard and record[size - 8:] == field


def _decisions(name: str, ago_s: float, campaigns: list[rules.Campaign], now: float = 1_700_000_000.0) -> bytes | str:
    """An event's trigger outcome as the worker makes it (no window)."""
    spec = ImportSpec(import_id="imp1", columns=None, identifier="email", trigger=True,  # type: ignore[arg-type]
                      trigger_window_s=None)
    event = Event(7, "a@x.co", "a@x.co", name, now - ago_s, None, {})
    return trigger_outcome(spec, event, rules.by_event(campaigns), now, 60)[0]


def test_the_campaigns_section_counts_the_chunks_decisions_by_kind_and_campaign_as_their_json_names_it():
    odd = 'say "hi", \\ "event": café'  # quotes, a backslash and the next key's name: cut by the JSON's own quotes
    campaigns = [rules.Campaign("follow-up", "order", 3600), rules.Campaign(odd, "order", 0),
                 rules.Campaign("welcome", "signup", 0)]
    outcomes = [_decisions("order", 60, campaigns), _decisions("order", 7200, campaigns),
                _decisions("signup", 0, campaigns), _decisions("other", 0, campaigns),
                _decisions("order", -86_400, campaigns), "passive"]
    assert outcomes[3] == "no_campaign" and outcomes[5] == "passive"
    section = by_campaign(outcomes)
    escaped = orjson.dumps(odd)[1:-1]
    assert dict(zip(section[1::2], section[2::2])) == {
        b"scheduled:follow-up": 1, b"discarded:follow-up": 1, b"sent_now:" + escaped: 2,
        b"future:follow-up": 1, b"future:" + escaped: 1, b"sent_now:welcome": 1}
    assert section[0] == 6 and len(section) == 13  # n, then n pairs: a handful a chunk, whatever its size


def test_the_report_reads_the_campaign_counters_back_to_their_names():
    from worker.ops.report import by_campaign as report_by_campaign

    odd = 'say "hi", café'
    state = {"tc:scheduled:follow-up": "3", "tc:sent_now:" + orjson.dumps(odd)[1:-1].decode(): "2",
             "tc:discarded:follow-up": "1", "tc:future:follow-up": "0", "trig_scheduled": "3"}
    assert report_by_campaign(state) == {odd: {"sent_now": 2}, "follow-up": {"scheduled": 3, "discarded": 1}}
