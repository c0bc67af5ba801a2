"""The people rules, one test per rule, against an in-memory directory."""
from datetime import UTC

from worker.people.columns import plan_people_columns
from worker.people.directory import Changes, Rules, Snapshot, apply_rows
from worker.people.rows import validate_people


class World:
    """A whole directory in memory: snapshots of everything, commits applied as the store would."""

    def __init__(self):
        self.by_id, self.by_email, self.people, self.seen = {}, {}, {}, {}
        self.seq = 0

    def snapshot(self, count):
        ids = [f"c{self.seq + n + 1}" for n in range(count)]
        self.seq += count
        return Snapshot(dict(self.by_id), dict(self.by_email), {k: dict(v) for k, v in self.people.items()},
                        dict(self.seen), ids)

    def commit(self, changes: Changes):
        for (kind, key), (_, new) in changes.index.items():
            index = self.by_id if kind == "id" else self.by_email
            if new:
                index[key] = new
            else:
                index.pop(key, None)
        for cio, (_, state) in changes.people.items():
            self.people[cio] = dict(state)
        self.seen.update(changes.seen)

    def run(self, header, *records, rules=None, clear=False, identifier=None, first_row=2):
        rules = rules or Rules()
        cols = plan_people_columns(header, identifier=identifier, data_to_process=rules.data_to_process)
        rules = Rules(rules.data_to_process, rules.id_only, cols.identifier, 1000)
        rows = validate_people([list(r) for r in records], list(range(first_row, first_row + len(records))), cols,
                               tz=UTC, clear_empty=clear)
        assert not rows.errors, rows.errors
        changes = apply_rows(rows.rows, self.snapshot(len(rows.rows)), rules)
        self.commit(changes)
        return changes

    def find(self, kind, value):
        cio = (self.by_id if kind == "id" else self.by_email).get(value)
        return self.people[cio.split(",")[0]] if cio else None


def codes(changes):
    return {row: [p.code for p in problems] for row, problems in changes.errors}


def test_new_people_get_a_stable_cio_id_and_are_found_by_id_and_email():
    w = World()
    ch = w.run(["id", "email", "name"], ["1", "Ann@Example.com", "Ann"])
    assert (ch.imported, ch.created) == (1, 1)
    ann = w.find("id", "1")
    assert ann["cio_id"] == "c1" and ann["email"] == "Ann@Example.com" and ann["a:name"] == "Ann"
    assert w.find("email", "ann@example.com") is ann
    assert ann["created_at"] == "1000" and ann["_v"] == "1"
    w.run(["id", "name"], ["1", "Annie"])
    assert w.find("id", "1")["cio_id"] == "c1" and w.find("id", "1")["_v"] == "2"


def test_all_adds_and_updates():
    w = World()
    w.run(["id", "plan"], ["1", "free"])
    ch = w.run(["id", "plan"], ["1", "pro"], ["2", "free"])
    assert (ch.imported, ch.created, ch.skipped) == (2, 1, 0)
    assert w.find("id", "1")["a:plan"] == "pro"


def test_only_new_adds_only_and_skips_existing_people():
    w = World()
    w.run(["id", "plan"], ["1", "free"])
    ch = w.run(["id", "plan"], ["1", "pro"], ["2", "pro"], ["2", "enterprise"], rules=Rules("only_new"))
    assert (ch.imported, ch.created, ch.skipped, ch.errors) == (1, 1, 2, [])
    assert w.find("id", "1")["a:plan"] == "free"
    assert w.find("id", "2")["a:plan"] == "pro"  # the later row for 2 finds 2 existing: file order


def test_only_existing_updates_only_and_unknown_people_are_errors():
    w = World()
    w.run(["email", "plan"], ["a@x.com", "free"])
    ch = w.run(["email", "plan"], ["a@x.com", "pro"], ["b@x.com", "pro"], rules=Rules("only_existing"))
    assert ch.imported == 1 and codes(ch) == {3: ["person_not_found"]}
    assert w.find("email", "b@x.com") is None


def test_an_existing_id_or_email_cannot_change_without_cio_id():
    w = World()
    w.run(["id", "email"], ["1", "a@x.com"])
    ch = w.run(["id", "email"], ["1", "new@x.com"])
    assert codes(ch) == {2: ["failed_attribute_change"]}
    assert "cio_id" in ch.errors[0][1][0].message
    ch = w.run(["email", "id"], ["a@x.com", "9"])
    assert codes(ch) == {2: ["failed_attribute_change"]}
    assert w.find("id", "1")["email"] == "a@x.com" and w.find("id", "9") is None


def test_an_id_or_email_a_person_does_not_have_yet_may_be_set():
    w = World()
    w.run(["email"], ["a@x.com"])
    w.run(["email", "id"], ["a@x.com", "7"])
    w.run(["id"], ["8"])
    w.run(["id", "email"], ["8", "b@x.com"])
    assert w.find("id", "7")["email"] == "a@x.com"
    assert w.find("email", "b@x.com")["id"] == "8"
    assert len(w.people) == 2


def test_cio_id_identifies_people_and_may_change_their_identifiers():
    w = World()
    w.run(["id", "email"], ["1", "a@x.com"], ["2", "b@x.com"])
    cio = w.find("id", "1")["cio_id"]
    ch = w.run(["cio_id", "id", "email"], [cio, "100", "A2@x.com"])
    assert ch.imported == 1 and not ch.errors
    assert w.find("id", "100")["cio_id"] == cio and w.find("id", "1") is None
    assert w.find("email", "a2@x.com")["cio_id"] == cio and w.find("email", "a@x.com") is None
    ch = w.run(["cio_id", "email"], [cio, "b@x.com"], ["nope", "c@x.com"])
    assert codes(ch) == {2: ["identifier_taken"], 3: ["person_not_found"]}


def test_id_and_email_of_two_different_people_is_an_error():
    w = World()
    w.run(["id", "email"], ["1", "a@x.com"], ["2", "b@x.com"])
    ch = w.run(["id", "email"], ["1", "b@x.com"])
    assert codes(ch) == {2: ["identifier_conflict"]}


def test_id_only_workspace_shares_emails_and_refuses_ambiguous_updates_by_email():
    w = World()
    id_only = Rules(id_only=True)
    ch = w.run(["id", "email"], ["1", "shared@x.com"], ["2", "shared@x.com"], ["3", "own@x.com"], rules=id_only)
    assert ch.created == 3 and not ch.errors
    assert w.by_email["shared@x.com"] == "c1,c2"
    ch = w.run(["email", "plan"], ["shared@x.com", "pro"], ["own@x.com", "pro"], ["new@x.com", "pro"],
               rules=id_only)
    assert codes(ch) == {2: ["ambiguous_email"], 4: ["missing_id"]}
    assert w.find("id", "3")["a:plan"] == "pro"
    # by id, an e-mail is a plain value there: it may change, and the shared entry follows
    ch = w.run(["id", "email"], ["2", "mine@x.com"], rules=id_only)
    assert not ch.errors and w.by_email["shared@x.com"] == "c1" and w.by_email["mine@x.com"] == "c2"


def test_subscription_preferences_replace_all_topics_and_topic_columns_set_one():
    w = World()
    w.run(["id", "cio_subscription_preferences"], ["1", '{"topics": {"topic_1": true, "topic_2": true}}'])
    w.run(["id", "cio_subscription_preferences.topics.topic_3"], ["1", "false"])
    person = w.find("id", "1")
    assert {k: v for k, v in person.items() if k.startswith("t:")} == \
        {"t:topic_1": "true", "t:topic_2": "true", "t:topic_3": "false"}
    w.run(["id", "cio_subscription_preferences"], ["1", '{"topics": {"topic_2": false}}'])
    person = w.find("id", "1")
    assert {k: v for k, v in person.items() if k.startswith("t:")} == {"t:topic_2": "false"}


def test_empty_cells_leave_attributes_unless_cleared():
    w = World()
    w.run(["id", "name", "plan", "unsubscribed"], ["1", "Ann", "pro", "true"])
    w.run(["id", "name", "plan", "unsubscribed"], ["1", "", "free", ""])
    assert w.find("id", "1")["a:name"] == "Ann" and w.find("id", "1")["unsubscribed"] == "true"
    w.run(["id", "name", "plan", "unsubscribed"], ["1", "", "free", ""], clear=True)
    person = w.find("id", "1")
    assert "a:name" not in person and "unsubscribed" not in person and person["a:plan"] == "free"


def test_created_at_from_the_file_or_the_time_of_the_import():
    w = World()
    w.run(["id", "created_at"], ["1", "2022-01-15T02:00:00Z"], ["2", ""])
    assert w.find("id", "1")["created_at"] == "1642212000"
    assert w.find("id", "2")["created_at"] == "1000"


def test_rows_apply_in_file_order_within_a_chunk():
    w = World()
    ch = w.run(["id", "email", "plan"], ["1", "", "a"], ["1", "late@x.com", "b"], ["1", "", "c"])
    assert (ch.imported, ch.created) == (3, 1)
    assert w.find("id", "1")["a:plan"] == "c" and w.find("id", "1")["email"] == "late@x.com"


def test_warnings_same_email_on_several_rows_and_id_with_several_emails():
    w = World()
    ch = w.run(["id", "email"], ["1", "a@x.com"], ["2", "b@x.com"], ["1", "A@x.com"], rules=Rules(id_only=True))
    assert {r: [p.code for p in ps] for r, ps in ch.warnings} == {4: ["duplicate_email"]}
    assert "row 2" in ch.warnings[0][1][0].message
    ch = w.run(["id", "email"], ["1", "c@x.com"], rules=Rules(id_only=True), first_row=90)
    assert {r: [p.code for p in ps] for r, ps in ch.warnings} == {90: ["id_multiple_emails"]}
    assert "row 2" in ch.warnings[0][1][0].message  # the memory spans chunks


def test_every_row_is_imported_skipped_or_an_error_once():
    w = World()
    w.run(["id"], ["5"])
    ch = w.run(["id", "email"], ["5", ""], ["6", "x@y.com"], ["", "x@y.com"], ["7", "x@y.com"],
               rules=Rules("only_new"))
    assert ch.imported + ch.skipped + len(ch.errors) == 4
    # row 5 names person 6 by e-mail: an existing person, so only_new skips it before looking further
    assert (ch.imported, ch.skipped, codes(ch)) == (1, 3, {})
    ch = w.run(["id", "email"], ["8", ""], ["7", "x@y.com"], ["9", "z@y.com"])
    assert (ch.imported, ch.skipped, codes(ch)) == (2, 0, {3: ["failed_attribute_change"]})
