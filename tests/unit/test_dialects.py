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
    cols = plan_columns(["Email", "Name", "Timestamp", "ID", "plan"])
    assert (cols.person, cols.name, cols.time, cols.event_id) == (0, 1, 2, 3)


def test_report_columns_are_dropped_and_mark_the_file_as_ours():
    cols = plan_columns(["email", "event_name", "x", "_row", "_errors"])
    assert cols.dropped == (3, 4) and cols.properties == ((2, "x"),) and cols.from_report


@pytest.mark.parametrize("header, code", [
    (["name", "time"], "no_person_column"),
    (["email", "time"], "no_event_name_column"),
    (["_cio_customer_id", "x"], "no_event_name_column"),
    (["email", "event_name", "plan", "Plan"], "duplicate_header"),
    (["email", "event_name", "name"], "ambiguous_column"),
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
