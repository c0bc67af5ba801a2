import pytest

from worker.cells import column_letter
from worker.errors import FileProblem
from worker.events.dialects import CUSTOMERIO, VERO, detect_dialect, plan_columns


def test_vero_header_with_spaces_after_commas():
    cols = plan_columns(["email", " event_name", " time", " item_type"])
    assert cols.dialect == VERO
    assert (cols.person, cols.name, cols.time, cols.event_id) == (0, 1, 2, None)
    assert cols.properties == ((3, "item_type"),)


def test_customerio_header_and_flat_properties():
    cols = plan_columns(["_cio_name", "_cio_customer_id", "_cio_timestamp", "a.b", "_cio_id"])
    assert cols.dialect == CUSTOMERIO
    assert (cols.person, cols.name, cols.time, cols.event_id) == (1, 0, 2, 4)
    assert cols.properties == ((3, "a.b"),)


def test_vero_name_and_id_aliases():
    cols = plan_columns(["Email", "Name", "Timestamp", "event_id", "plan"])
    assert (cols.person, cols.name, cols.time, cols.event_id) == (0, 1, 2, 3)


def test_in_a_vero_file_id_is_the_person_not_the_event():
    """Vero's `id` is its user id: four events of user 1859 are four events, not one and three duplicates."""
    only_id = plan_columns(["id", "event_name", "time"])
    assert (only_id.person, only_id.person_kind, only_id.event_id) == (0, "id", None)
    both = plan_columns(["email", "id", "event_name"])
    assert (both.person, both.person_kind, both.properties) == (0, "email", ((1, "id"),))
    assert "matched by email" in both.notes[0]
    by_id = plan_columns(["email", "id", "event_name"], identifier="id")
    assert (by_id.person, by_id.person_kind, by_id.properties) == (1, "id", ((0, "email"),))


@pytest.mark.parametrize("header", [["Email Address", "Event Name", "Date"], ["EMAIL", "EVENT_NAME", "TIME"],
                                    ["e-mail", "event-name", "Timestamp"]])
def test_headers_as_people_write_them(header):
    cols = plan_columns(header)
    assert (cols.dialect, cols.person, cols.name, cols.time, cols.person_kind) == (VERO, 0, 1, 2, "email")


def test_event_name_wins_over_a_name_column_which_is_a_property():
    cols = plan_columns(["email", "event_name", "name", "price"])
    assert cols.name == 1 and cols.properties == ((2, "name"), (3, "price"))
    assert "'name' is imported as a property: 'event_name' is the event name" in cols.notes[0]


def test_map_and_skip_settle_roles_by_hand():
    cols = plan_columns(["Mail", "What", "date", "time", "junk"],
                        mapping={"Mail": "email", "What": "event_name", "date": "time", "time": "clock"}, skip=("junk",))
    assert (cols.person, cols.name, cols.time, cols.dropped) == (0, 1, 2, (4,))
    assert cols.properties == ((3, "clock"),)
    with pytest.raises(FileProblem, match="does not have"):
        plan_columns(["email", "event_name"], skip=("nope",))


def test_report_columns_are_dropped_and_mark_the_file_as_ours():
    cols = plan_columns(["email", "event_name", "x", "_row", "_errors"])
    assert cols.dropped == (3, 4) and cols.properties == ((2, "x"),) and cols.from_report


@pytest.mark.parametrize("header, code", [
    (["name", "time"], "no_person_column"),
    (["email", "time"], "no_event_name_column"),
    (["_cio_customer_id", "x"], "no_event_name_column"),
    (["email", "event_name", "plan", "Plan"], "duplicate_header"),
    (["email", "event_name", "date", "time"], "ambiguous_column"),
    (["email", "Event Name", "event_name"], "ambiguous_column"),
])
def test_file_problems(header, code):
    with pytest.raises(FileProblem) as caught:
        plan_columns(header)
    assert caught.value.code == code


def test_duplicate_header_names_both_columns():
    with pytest.raises(FileProblem, match="columns C and D"):
        plan_columns(["email", "event_name", "plan", "plan"])


def test_too_many_columns():
    with pytest.raises(FileProblem, match="101 columns; the limit is 100"):
        plan_columns(["email", "event_name"] + [f"p{i}" for i in range(99)])
    assert plan_columns(["email", "event_name"] + [f"p{i}" for i in range(99)], max_columns=200)


def test_forced_dialect():
    assert plan_columns(["_cio_name", "_cio_customer_id", "email"], dialect=CUSTOMERIO).person == 1


def test_awkward_names_are_noted():
    assert "item type" in plan_columns(["email", "event_name", "item type"]).notes[0]


def test_detect_and_letters():
    assert detect_dialect(["foo"]) is None
    assert [column_letter(i) for i in (0, 25, 26, 27, 701, 702)] == ["A", "Z", "AA", "AB", "ZZ", "AAA"]
