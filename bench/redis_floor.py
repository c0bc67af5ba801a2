"""What bounds Redis's work a row of an events import: the real commit script against what it cannot avoid.

    python bench/redis_floor.py [--rows 60000] [--chunk-rows 2000] [--repeats 3] [--no-callgrind]
                                [--prefill 0] [--variants a,b,c,d,e8,e12]

The benchmark's Vero file (bench/generate.py) is read, validated and assembled by the real worker code, and
committed once (commit.lua through the Store) on a private redis-server, recording each chunk's KEYS and ARGV
as the worker built them. Those arguments are then sent again, chunk after chunk, from an empty Redis (the
import created, as a first import sees it) to each of these:

    a  commit.lua as it is
    b  the same arguments taken in and bound, the events' loop cutting the same strings (field, shard, the
       mark's value, each record's place), and no redis.call an event: the script without its marks
    c  b, and one HSETNX an event with that shard, field and value: the marks alone (c - b: the calls)
    d  one XADD a chunk of the chunk's events text alone (the outbox entry's bulk), sent as a plain command
    e8, e12  the marks grouped by shard, shards named by a key's first 8 (12) bits, field = the rest of
       the key (9 bytes: exact); one HMGET and one multi-field HSET (the new ones) a shard the chunk touches,
       a table of the chunk's keys for the duplicates inside one chunk: a commit a shard, not an event

Two measures, in one run: redis-server's instructions (a server under valgrind's callgrind, zeroed before
and dumped after each variant's chunks, as bench/redis_work.py counts them; skipped by --no-callgrind),
and redis-server's CPU (INFO cpu: used_cpu_user + used_cpu_sys, before and after) on a plain server,
the variants alternating, --repeats rounds, median. Both count the whole server: taking the command in,
the script, the commands it calls. Prints µs and instructions a row, and each as a ratio to a.
--prefill N writes N live marks of other events first, in each variant's shape (outside both counts): the
shards of a dedupe memory in use (with 8 bits and 1M marks, hashtables of ~3,900 fields; the product's
16 bits keep ~15 a shard, in the compact encoding). Under callgrind a million take minutes a variant.
"""
from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from generate import generate

# The fixed arguments bound as commit.lua binds them, the events section's arguments found where it finds
# them, the loop over the events cutting what commit.lua's loop cuts. @CALL@ is the per-event work.
_LOOP = """
local ARGV_NAMES = {@NAMES@}
local A = {}
for n, name in ipairs(ARGV_NAMES) do A[name] = ARGV[n] end
local call, sub, byte = redis.call, string.sub, string.byte
local ids_at, ev_at = tonumber(A.ids_at), tonumber(A.events_at)
local n_ids, n_ev, marks = tonumber(ARGV[ids_at]), tonumber(ARGV[ev_at]), ARGV[ev_at + 1]
local records, exp_h, dd_prefix, shard_bits = ARGV[ids_at + 1], A.expiry_h, A.dedupe_prefix, tonumber(A.shard_bits)
local no_field = string.rep('\\0', 8)
local plen, wide, scale = #dd_prefix, shard_bits > 16, 2 ^ (24 - shard_bits)
local rec = plen + 10
local r, next_k, mode, new = 0, 0, 0, 0
if n_ids > 0 then
  local b1, b2, b3
  b1, b2, b3, mode = byte(records, 1, 4)
  next_k = b1 + b2 * 256 + b3 * 65536
end
@BEFORE@
for k = 1, n_ev do
  local at = (k - 1) * rec
  local field = sub(marks, at + plen + 3, at + rec)
  local first_use = k == next_k
  if field ~= no_field or sub(marks, at + plen + 1, at + plen + 2) ~= '\\0\\0' then
    local shard = sub(marks, at + 1, at + plen + 2)
    if wide then shard = shard .. string.char(math.floor(string.byte(marks, at + plen + 3) / scale)) end
    local value = first_use and sub(records, r + 5, r + 27) or exp_h
    @CALL@
    if first_use then
      r = r + 47
      if r < #records then
        local b1, b2, b3
        b1, b2, b3, mode = byte(records, r + 1, r + 4)
        next_k = b1 + b2 * 256 + b3 * 65536
      end
    end
  end
end
@AFTER@
return new
"""
FLOOR = {"@BEFORE@": "", "@CALL@": "new = new + 1", "@AFTER@": ""}
MARKS = {"@BEFORE@": "", "@CALL@": "new = new + call('HSETNX', shard, field, value)", "@AFTER@": ""}
# Grouped: shard = prefix .. the key's first byte (8 bits) or first byte and the second's top 4 bits (12),
# field = the key's last 9 bytes. The key is the record's last 10 bytes.
GROUPED = {
    "@BEFORE@": "local by_shard, order, seen = {}, {}, {}",
    "@CALL@": """
    local key = sub(marks, at + plen + 1, at + rec)
    if not seen[key] then
      seen[key] = true
      local s = @SHARD@
      local g = by_shard[s]
      if not g then g = {{}, {}}; by_shard[s] = g; order[#order + 1] = s end
      local f = g[1]
      f[#f + 1] = sub(key, 2)
      g[2][#f] = value
    end""",
    "@AFTER@": """
for _, s in ipairs(order) do
  local f, v = by_shard[s][1], by_shard[s][2]
  local got, pairs_ = call('HMGET', s, unpack(f)), {}
  for i = 1, #f do
    if not got[i] then pairs_[#pairs_ + 1] = f[i]; pairs_[#pairs_ + 1] = v[i] end
  end
  if #pairs_ > 0 then call('HSET', s, unpack(pairs_)); new = new + #pairs_ / 2 end
end""",
}
SHARD = {8: "dd_prefix .. sub(key, 1, 1)",
         12: "dd_prefix .. sub(key, 1, 1) .. string.char(math.floor(byte(key, 2) / 16))"}


def lua(parts: dict[str, str], names: str, shard_bits: int = 0) -> str:
    text = _LOOP.replace("@NAMES@", names)
    for mark, code in parts.items():
        text = text.replace(mark, code.replace("@SHARD@", SHARD.get(shard_bits, "")))
    return text


def record(path: Path, chunk_rows: int, url: str) -> tuple[list[tuple[list, list]], object]:
    """Each chunk's commit KEYS and ARGV as the worker builds them (the last, when a chunk is told of the
    import's ids and built again), from a real import of ``path`` through the Store; and the spec."""
    import time as clock

    from producers.api import inspect
    from producers.split import chunks
    from worker.events import chunk as core
    from worker.events.pipeline import commit_validated
    from worker.settings import Settings
    from worker.spec import ImportSpec
    from worker.store import Store, connect

    st, settings = Store(connect(url)), Settings()
    source, plan = inspect(path, settings=settings)
    spec = ImportSpec(import_id="floor", columns=plan.columns, identifier=plan.identifier, create_people=True,
                      trigger=False, trigger_window_s=72 * 3600)
    st.imports.create(spec, {}, 3600)
    real = st.events._commit
    sent: list[tuple[list, list]] = []

    def recorded(keys, args):
        sent.append((keys, args))
        return real(keys=keys, args=args)

    st.events._commit = recorded
    at = clock.time()
    out: list[tuple[list, list]] = []
    with source:
        for number, c in enumerate(chunks(source, plan, chunk_rows)):
            valid = core.validate(spec, c.rows, c.row_numbers, at, settings.clock_skew_s)
            commit_validated(st, spec, number, valid, c.rows, c.row_numbers, settings, at)
            out.append(sent[-1])
    return out, spec


class Variants:
    """The variants, each sent every chunk's arguments against an empty Redis (the import created)."""

    def __init__(self, client, spec, commits: list[tuple[list, list]], prefill: int = 0) -> None:
        from dedupe_memory import FILL

        from worker.store import Store
        from worker.store.lua import script, with_lib

        self.client, self.spec, self.commits, self.prefill = client, spec, commits, prefill
        self.fill = client.script_load(with_lib(FILL))
        self.store = Store(client)
        source = script("commit.lua")
        names = re.search(r"local ARGV_NAMES = \{(.*?)\}", source, re.S).group(1)
        self.sha = {"a": client.script_load(source), "b": client.script_load(with_lib(lua(FLOOR, names))),
                    "c": client.script_load(with_lib(lua(MARKS, names))),
                    "e8": client.script_load(with_lib(lua(GROUPED, names, 8))),
                    "e12": client.script_load(with_lib(lua(GROUPED, names, 12)))}
        arg_names = [n.strip("' \n") for n in names.split(",")]
        ev_at = arg_names.index("events_at")
        # the events' text of each chunk: ARGV[events_at + 3] (1-based)
        self.texts = [(keys[5], args[int(args[ev_at]) + 2]) for keys, args in commits]

    def reset(self, name: str) -> None:
        """An empty Redis, the import created; and ``prefill`` live marks of other events, in variant
        ``name``'s shape (dedupe_memory.py's, 16 bits, or the grouped one: e8, e12)."""
        from worker import keys

        self.client.flushall()
        self.store.imports.create(self.spec, {}, 3600)
        bits = {"e8": 8, "e12": 12}.get(name, 16)
        for seed, start in enumerate(range(0, self.prefill, 100_000), 1):
            self.client.evalsha(self.fill, 0, keys.DEDUPE_PREFIX, bits, min(100_000, self.prefill - start), seed,
                                500_000, 1)

    def run(self, name: str) -> int:
        """Send every chunk to variant ``name``; the sum of what they answer (the marks made, for b, c, e)."""
        total = 0
        if name == "d":
            for outbox, text in self.texts:
                self.client.execute_command("XADD", outbox, "*", "events", text)
            return len(self.texts)
        for keys, args in self.commits:
            answer = self.client.evalsha(self.sha[name], len(keys), *keys, *args)
            total += int(answer[1]) if isinstance(answer, list) else int(answer)
        return total


ORDER = ["a", "b", "c", "d", "e8", "e12"]
WHAT = {"a": "commit.lua as it is", "b": "floor: arguments bound, loop cutting, no call",
        "c": "b + one HSETNX an event (the marks)", "d": "XADD of the chunk's events text alone",
        "e8": "grouped marks, 8 shard bits: HMGET + HSET a shard",
        "e12": "grouped marks, 12 shard bits: HMGET + HSET a shard"}


def cpu_us(client) -> float:
    info = client.info("cpu")
    return (info["used_cpu_user"] + info["used_cpu_sys"]) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--chunk-rows", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the CPU measure (variants alternating)")
    parser.add_argument("--no-callgrind", action="store_true", help="CPU µs only (no instruction counts)")
    parser.add_argument("--prefill", type=int, default=0,
                        help="live marks of other events written before each variant's chunks, in its shape "
                             "(a steady state's shards; e8's are then hashtables; slow under callgrind)")
    parser.add_argument("--variants", default=",".join(ORDER), help="which to run (comma-separated; a always)")
    args = parser.parse_args()
    ORDER[:] = [name for name in ORDER if name == "a" or name in args.variants.split(",")]

    import redis

    from worker.store.embedded import start_private

    work = Path(tempfile.mkdtemp(prefix="backfill-floor-"))
    path = work / "events.csv"
    with path.open("w", newline="") as out:
        generate(out, args.rows)
    server, url = start_private(work / "plain")
    try:
        commits, spec = record(path, args.chunk_rows, url)
        plain = Variants(redis.Redis.from_url(url), spec, commits, args.prefill)
        answers: dict[str, int] = {}
        cpu: dict[str, list[float]] = {name: [] for name in ORDER}
        for round_ in range(args.repeats):
            for name in ORDER if round_ % 2 == 0 else ORDER[::-1]:
                plain.reset(name)
                before = cpu_us(plain.client)
                answers[name] = plain.run(name)
                cpu[name].append((cpu_us(plain.client) - before) / args.rows)
    finally:
        server.kill()
        server.wait()
    instructions = {} if args.no_callgrind else count(work, spec, commits, args.rows, args.prefill)
    print(f"{args.rows:,} rows, {len(commits)} chunks, {args.prefill:,} marks before; CPU: median of {args.repeats} "
          f"alternating rounds (all: µs a row); instructions: one run under callgrind")
    print(f"{'':4} {'what':52} {'µs/row':>7} {'x a':>5} {'instr/row':>10} {'x a':>5}  answered  CPU rounds")
    for name in ORDER:
        us = statistics.median(cpu[name])
        ins = instructions.get(name)
        shown = (f"{ins:,.0f}", f"{ins / instructions['a']:.2f}") if ins else ("-", "-")
        print(f"{name:4} {WHAT[name]:52} {us:7.2f} {us / statistics.median(cpu['a']):5.2f} "
              f"{shown[0]:>10} {shown[1]:>5}"
              f"  {answers[name]:>8}  {', '.join(f'{v:.2f}' for v in cpu[name])}")


def count(work: Path, spec, commits, rows: int, prefill: int) -> dict[str, float]:
    """Instructions a row of each variant: a redis-server under callgrind (redis_work.py's), zeroed before a
    variant's chunks and dumped after them (the reset between variants is outside the count)."""
    import redis
    from redis_work import dump_total, start_counted, wait_up

    server, url, counted = start_counted(work)
    try:
        client = redis.Redis.from_url(url, socket_timeout=600)
        wait_up(client)
        variants = Variants(client, spec, commits, prefill)
        out = {}
        for dumps, name in enumerate(ORDER, 1):
            variants.reset(name)
            client.ping()
            subprocess.run(["callgrind_control", "-z", str(server.pid)], check=True, capture_output=True)
            variants.run(name)
            subprocess.run(["callgrind_control", "-d", str(server.pid)], check=True, capture_output=True)
            out[name] = dump_total(Path(f"{counted}.{dumps}")) / rows
        return out
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
