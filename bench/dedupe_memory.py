"""Redis memory per remembered event id, by number of live marks, shard bits and kind of mark.

    python bench/dedupe_memory.py                    # 1M and 50M marks, 16 and 17 shard bits, both kinds
    python bench/dedupe_memory.py --marks 1000000 --bits 16 --kind id

A mark's value is its expiry hour; an event id's mark (``--kind id``) holds 16 bytes more: the tag of the
import that used the id first and what that import remembers of it (commit.lua). ``--kind key``: the mark of
an event without an id (keyed by its content), the hour alone.

Marks are written straight into a private redis-server by a Lua script that names shards and
fields exactly as commit.lua does (lib.lua's dedupe_slot), in batches, from random 10-byte keys:
the same shapes, without the millions of events around them (``--bits 8`` or ``12``: the grouped
shape bench/redis_floor.py measures, not the product's). Prints bytes per mark for each
run: the sizing rule in the README comes from these figures.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# KEYS: none. ARGV[1] shard prefix, ARGV[2] shard bits, ARGV[3] how many marks, ARGV[4] seed,
# ARGV[5] the expiry hour the marks hold, ARGV[6] "1" for event ids' marks (16 random bytes after the hour).
# Writes random marks as commit.lua would; returns how many.
FILL = """
math.randomseed(tonumber(ARGV[4]))
local bits, n, ids = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[6] == '1'
local bytes, more = {}, {}
for _ = 1, n do
  for b = 1, 10 do bytes[b] = math.random(0, 255) end
  local dk, shard, field = string.char(unpack(bytes))
  if bits < 16 then  -- the grouped shape (bench/redis_floor.py's e8, e12): a shard by 8 or 12 bits, 9-byte fields
    shard = ARGV[1] .. string.sub(dk, 1, 1) .. (bits == 12 and string.char(math.floor(string.byte(dk, 2) / 16)) or '')
    field = string.sub(dk, 2)
  else
    shard, field = dedupe_slot(ARGV[1], dk, bits)
  end
  local value = ARGV[5]
  if ids then
    for b = 1, 16 do more[b] = math.random(0, 255) end
    value = value .. string.char(unpack(more))
  end
  redis.call('HSET', shard, field, value)
end
return n
"""


def measure(marks: int, bits: int, kind: str = "key", batch: int = 200_000) -> dict:
    import redis

    from worker import keys
    from worker.store.embedded import start_private
    from worker.store.lua import with_lib

    work = Path(tempfile.mkdtemp(prefix="backfill-dedupe-"))
    server, url = start_private(work / "redis")
    try:
        client = redis.Redis.from_url(url, socket_timeout=600)  # (a batch can outlast the default)
        fill = client.register_script(with_lib(FILL))
        before = client.info("memory")["used_memory"]
        started = time.perf_counter()
        for seed, start in enumerate(range(0, marks, batch), 1):
            fill(args=[keys.DEDUPE_PREFIX, bits, min(batch, marks - start), seed, 500_000, int(kind == "id")])
        seconds = time.perf_counter() - started
        used = client.info("memory")["used_memory"] - before
        shards = client.dbsize()
        encoding = client.object("encoding", client.randomkey()).decode()
        return {"marks": marks, "bits": bits, "kind": kind, "shards": shards, "marks_per_shard": round(marks / shards),
                "bytes_per_mark": round(used / marks, 1), "seconds": round(seconds, 1), "encoding": encoding}
    finally:
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--marks", type=int, action="append", help="live marks (repeatable; default 1M and 50M)")
    parser.add_argument("--bits", type=int, action="append",
                        help="shard bits (repeatable; default 16 and 17); 8 or 12: the grouped shape of "
                             "bench/redis_floor.py (a shard by a key's first 8 or 12 bits, the other 9 bytes its field)")
    parser.add_argument("--kind", choices=["key", "id"], action="append",
                        help="marks of events keyed by content, or of event ids (repeatable; default both)")
    args = parser.parse_args()
    print(f"{'marks':>12} {'bits':>4} {'kind':>4} {'shards':>8} {'marks/shard':>11} {'bytes/mark':>10} {'seconds':>8} encoding")
    for marks in args.marks or [1_000_000, 50_000_000]:
        for bits in args.bits or [16, 17]:
            for kind in args.kind or ["key", "id"]:
                r = measure(marks, bits, kind)
                print(f"{r['marks']:>12,} {r['bits']:>4} {r['kind']:>4} {r['shards']:>8,} "
                      f"{r['marks_per_shard']:>11,} {r['bytes_per_mark']:>10} {r['seconds']:>8} {r['encoding']}", flush=True)


if __name__ == "__main__":
    main()
