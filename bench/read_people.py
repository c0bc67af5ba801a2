"""A people snapshot's read of person records: read_people (MGET and EXISTS in one transaction, read_all
when a hash is among the keys) against the two steps it replaced (MGET, then a HGETALL of each key MGET
found no string at), MGET then read_all of those keys, read_all alone (read_people.lua: one script, whatever
the keys hold) and MGET alone.

    python bench/read_people.py [--people 2000] [--repeat 30]

On a private redis-server, ``--people`` people stored as one string each, read three ways: all found (an
import's snapshot), every key asked twice, a dry run's shadow key (nobody there) then the real one (a dry
run's snapshot), and all found with one in ten still a hash of fields (as stored before people became one
string). Prints the best milliseconds of ``--repeat`` reads (wall time: the round trips are the point),
each against MGET alone in the same run, the least microseconds Redis spent on one (its commands, a
script's included), and the round trips each took. MGET alone is the floor, not an
alternative: it answers nothing for a hash.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()

    import orjson
    import redis

    from worker import keys
    from worker.store.embedded import start_private
    from worker.store.people import read_all, read_people

    trips = [0]

    class Counting(redis.Connection):
        def send_packed_command(self, command, check_health=True):
            trips[0] += 1
            super().send_packed_command(command, check_health)

    def two_steps(client: redis.Redis, names: list[str]) -> list:
        found = [None if v is None else orjson.loads(v) for v in client.mget(names)]
        older = [n for n, state in enumerate(found) if state is None]
        if older:
            pipe = client.pipeline(transaction=False)
            for n in older:
                pipe.hgetall(names[n])
            for n, raw in zip(older, pipe.execute()):
                if raw:
                    found[n] = {k.decode(): v.decode() for k, v in raw.items()}
        return found

    def then_script(client: redis.Redis, names: list[str]) -> list:
        found = [None if v is None else orjson.loads(v) for v in client.mget(names)]
        missing = [n for n, state in enumerate(found) if state is None]
        if missing:
            for n, state in zip(missing, read_all(client, [names[n] for n in missing])):
                found[n] = state
        return found

    def mget(client: redis.Redis, names: list[str]) -> list:
        return [None if v is None else orjson.loads(v) for v in client.mget(names)]

    server, url = start_private(Path(tempfile.mkdtemp(prefix="backfill-read-people-")))
    try:
        client = redis.Redis(connection_pool=redis.ConnectionPool.from_url(url, connection_class=Counting))
        real = [keys.person(f"c{n}") for n in range(args.people)]
        writes = client.pipeline(transaction=False)
        for n, name in enumerate(real):
            state = {"cio_id": f"c{n}", "email": f"p{n}@example.com", "a:plan": "basic", "_v": "3"}
            if n % 10 == 0:
                writes.hset(name + ":old", mapping=state)
            writes.set(name, orjson.dumps(state))
        writes.execute()
        shapes = {"all found": real,
                  "dry run (shadow, then real)": [keys.import_shadow("bench") + "person:" + n for n in real] + real,
                  "one in ten a hash": [n + ":old" if i % 10 == 0 else n for i, n in enumerate(real)]}
        ways = {"MGET alone": mget, "MGET, then HGETALLs": two_steps, "MGET, then read_all": then_script,
                "read_all": read_all, "read_people": read_people}
        print(f"{args.people:,} people, best of {args.repeat}: ms (x MGET alone), Redis's µs (INFO commandstats), "
              "round trips")
        for shape, names in shapes.items():
            best = dict.fromkeys(ways, float("inf"))
            server_us = dict.fromkeys(ways, float("inf"))
            rounds = {}
            for read in ways.values():
                read(client, names)  # (read_all's first call loads its script)
            for _ in range(args.repeat):
                for way, read in ways.items():
                    client.config_resetstat()
                    trips[0] = 0
                    started = time.perf_counter()
                    read(client, names)
                    best[way] = min(best[way], time.perf_counter() - started)
                    rounds[way] = trips[0]
                    stats = client.info("commandstats")
                    server_us[way] = min(server_us[way], sum(v["usec"] for k, v in stats.items()
                                                             if k not in ("cmdstat_config", "cmdstat_info")))
            print(f"  {shape} ({len(names):,} keys):")
            for way in ways:
                print(f"    {way:<22}{best[way] * 1000:6.2f} ms ({best[way] / best['MGET alone']:.2f}x) "
                      f"{server_us[way]:6,.0f} µs  {rounds[way]}")
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
