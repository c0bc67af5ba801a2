"""Deterministic, realistic events files for benchmarks (seeded: same arguments, same bytes).

Vero dialect by default (``--dialect customerio`` for the other): e-mails, event
names, mixed time formats (ISO with Z, Vero's +10 offsets, Unix seconds), an
event id column, 3-5 properties per event; about 10 % duplicate events and 1 %
bad rows (bad e-mail, missing name, unreadable time).
"""
from __future__ import annotations

import argparse
import csv
import random
import sys
from datetime import UTC, datetime, timedelta

NAMES = ["Completes checkout", "Viewed product", "Added to cart", "Signed up", "Opened app", "Refunded"]
ITEMS = ["yellow_shirt", "green_shirt", "red_hat", "blue_jeans", "socks", "scarf"]
START = datetime(2024, 1, 1, tzinfo=UTC)


def _time(rng: random.Random, moment: datetime) -> str:
    kind = rng.random()
    if kind < 0.5:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if kind < 0.8:
        return (moment + timedelta(hours=10)).strftime("%Y-%m-%d %H:%M+10")
    return str(int(moment.timestamp()))


def generate(out, rows: int, *, seed: int = 7, dialect: str = "vero", people: int = 20_000) -> None:
    """Write ``rows`` data rows to the text stream ``out``."""
    rng = random.Random(seed)
    writer = csv.writer(out, lineterminator="\n")
    if dialect == "vero":
        writer.writerow(["email", "event_name", "time", "event_id", "item_type", "price", "currency", "coupon", "channel"])
    else:
        writer.writerow(["_cio_name", "_cio_customer_id", "_cio_timestamp", "_cio_id", "item_type", "price",
                         "currency", "coupon", "channel"])
    recent: list[list[str]] = []
    for n in range(rows):
        if recent and rng.random() < 0.10:
            writer.writerow(rng.choice(recent))  # a duplicate event (same id)
            continue
        person = f"user{rng.randrange(people)}@example.com" if dialect == "vero" else f"cust_{rng.randrange(people)}"
        name = rng.choice(NAMES)
        moment = START + timedelta(seconds=rng.randrange(300 * 86_400))
        when = _time(rng, moment)
        props = [rng.choice(ITEMS), f"{rng.randrange(100, 20_000) / 100:.2f}", "EUR",
                 rng.choice(["", "SPRING", "VIP"]), rng.choice(["web", "ios", "android"])]
        kept = rng.randint(3, 5)
        props = props[:kept] + [""] * (5 - kept)
        bad = rng.random()
        if bad < 0.0033:
            person = person.replace("@", "-at-") if dialect == "vero" else ""
        elif bad < 0.0066:
            name = ""
        elif bad < 0.01:
            when = "last tuesday"
        row = [person, name, when, f"ev-{seed}-{n}", *props] if dialect == "vero" else \
            [name, person, when, f"ev-{seed}-{n}", *props]
        writer.writerow(row)
        if len(recent) < 1000:
            recent.append(row)
        else:
            recent[rng.randrange(1000)] = row


def campaigns(count: int = 3) -> list:
    """The first ``count`` of the benchmark's three campaigns on the file's event names (its times are all in
    the past, so with no trigger window): one sent at once, one scheduled (three years on), one discarded (its
    hour is over)."""
    from worker.events.rules import Campaign

    return [Campaign("thanks", "Completes checkout", 0), Campaign("later", "Added to cart", 3 * 365 * 86_400),
            Campaign("nudge", "Viewed product", 3600)][:count]


PLANS = ["free", "trial", "pro", "enterprise"]


def generate_people(out, rows: int, *, seed: int = 7) -> None:
    """Write ``rows`` people rows: id, email and 5 attributes; ~10 % update an earlier person, ~1 % bad."""
    rng = random.Random(seed)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "email", "first_name", "plan", "created_at", "unsubscribed",
                     "cio_subscription_preferences.topics.topic_news"])
    made = 0
    for _ in range(rows):
        if made and rng.random() < 0.10:
            n = rng.randrange(made)  # an update of someone earlier in the file
        else:
            n, made = made, made + 1
        created = _time(rng, START + timedelta(seconds=rng.randrange(300 * 86_400)))
        email = f"person{n}@example.com"
        bad = rng.random()
        if bad < 0.005:
            email = email.replace("@", "-at-")
        elif bad < 0.01:
            created = "soon"
        writer.writerow([f"u{n}", email, f"Name{n}", rng.choice(PLANS), created, rng.choice(["true", "false", ""]),
                         rng.choice(["yes", "no", ""])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("rows", type=int)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dialect", choices=["vero", "customerio", "people"], default="vero",
                        help="an events dialect, or people (a people file)")
    args = parser.parse_args()
    if args.dialect == "people":
        generate_people(sys.stdout, args.rows, seed=args.seed)
    else:
        generate(sys.stdout, args.rows, seed=args.seed, dialect=args.dialect)


if __name__ == "__main__":
    main()
