from datetime import UTC

import pytest

from worker.errors import FileProblem
from worker.people.columns import parse_mapping, plan_people_columns
from worker.people.rows import parse_bool, validate_people


def plan(header, **options):
    return plan_people_columns(header, **options)


def test_roles_of_reserved_columns_and_attributes():
    cols = plan(["ID", " email", "created_at", "Unsubscribed", "first_name", "cio_subscription_preferences",
                 "cio_subscription_preferences.topics.topic_7"])
    assert (cols.id, cols.email, cols.created_at, cols.unsubscribed, cols.preferences) == (0, 1, 2, 3, 5)
    assert cols.attributes == ((4, "first_name"),)
    assert cols.topics == ((6, "topic_7"),)
    assert cols.identifier == "id"


def test_identifier_detected_cio_id_then_id_then_email():
    assert plan(["email", "cio_id"]).identifier == "cio_id"
    assert plan(["email", "id"]).identifier == "id"
    assert plan(["email", "name"]).identifier == "email"


def test_a_file_without_identifier_column_is_refused_with_its_columns_named():
    with pytest.raises(FileProblem) as exc:
        plan(["name", "plan"])
    assert exc.value.code == "no_identifier_column"
    assert "name, plan" in str(exc.value)


def test_identifier_option_needs_its_column():
    with pytest.raises(FileProblem) as exc:
        plan(["email", "name"], identifier="id")
    assert exc.value.code == "no_identifier_column"


def test_cio_id_cannot_add_people():
    with pytest.raises(FileProblem) as exc:
        plan(["cio_id", "email"], data_to_process="only_new")
    assert exc.value.code == "cio_id_cannot_add"


def test_map_renames_a_column_and_two_email_columns_are_refused():
    cols = plan(["Mail", "Topic A"], mapping=parse_mapping(["mail=email", "Topic A=cio_subscription_preferences"
                                                             ".topics.topic_a"]))
    assert cols.email == 0 and cols.topics == ((1, "topic_a"),)
    with pytest.raises(FileProblem) as exc:
        plan(["email", "Mail"], mapping={"mail": "email"})
    assert exc.value.code == "duplicate_attribute"
    assert "columns A and B" in str(exc.value)


def test_skip_and_unknown_map_column():
    cols = plan(["id", "secret", "name"], skip=["Secret"])
    assert cols.dropped == (1,) and cols.attributes == ((2, "name"),)
    with pytest.raises(FileProblem) as exc:
        plan(["id"], mapping={"nope": "email"})
    assert exc.value.code == "unknown_column"
    with pytest.raises(ValueError):
        parse_mapping(["no-equals-sign"])


def test_column_names_awkward_in_templates_are_noted():
    cols = plan(["id", "first name", "plan-tier", "ok_name"])
    assert len(cols.notes) == 2
    assert "'first name'" in cols.notes[0] and "customer[\"first name\"]" in cols.notes[0]


def test_duplicate_header_and_too_many_columns():
    with pytest.raises(FileProblem) as exc:
        plan(["id", "ID"])
    assert exc.value.code == "duplicate_header"
    with pytest.raises(FileProblem) as exc:
        plan(["id"] + [f"c{i}" for i in range(100)])
    assert exc.value.code == "too_many_columns"


def rows_of(header, *records, clear=False, **options):
    cols = plan(header, **options)
    return validate_people([list(r) for r in records], list(range(2, 2 + len(records))), cols,
                           tz=UTC, clear_empty=clear)


def test_row_without_identifier_value_is_an_error_naming_the_column():
    out = rows_of(["id", "email", "name"], ["", "", "Ann"], ["1", "", "Bob"])
    assert [r.row for r in out.rows] == [3]
    (row, cells, problems), = out.errors
    assert row == 2 and problems[0].code == "missing_identifier" and problems[0].column == "id"


def test_email_cell_holds_one_valid_address():
    out = rows_of(["email"], ["a@x.com, b@x.com"], ["a@x.com;b@x.com"], ["not-an-email"], ["A@X.com"])
    assert [p[2][0].code for p in out.errors] == ["multiple_emails", "multiple_emails", "invalid_email"]
    assert out.rows[0].email == "A@X.com" and out.rows[0].email_key == "a@x.com"


def test_created_at_reads_event_time_formats():
    out = rows_of(["id", "created_at"], ["1", "2022-01-15T02:00:00Z"], ["2", "1642212000"],
                  ["3", "2022-01-15 12:00+10"], ["4", "yesterday"])
    assert [r.set["created_at"] for r in out.rows] == ["1642212000"] * 3
    assert out.errors[0][2][0].code == "invalid_time" and out.errors[0][2][0].column == "created_at"


def test_unsubscribed_is_a_boolean():
    assert [parse_bool(t) for t in ("true", "FALSE", "1", "0", "yes", "No", "maybe")] == \
        [True, False, True, False, True, False, None]
    out = rows_of(["id", "unsubscribed"], ["1", "Yes"], ["2", "0"], ["3", "maybe"])
    assert [r.set["unsubscribed"] for r in out.rows] == ["true", "false"]
    assert out.errors[0][2][0].code == "invalid_boolean"


def test_subscription_preferences_json_and_topic_columns():
    header = ["id", "cio_subscription_preferences", "cio_subscription_preferences.topics.topic_3"]
    out = rows_of(header, ["1", '{"topics": {"topic_1": true, "topic_2": false}}', "no"],
                  ["2", "", "true"], ["3", "{not json", ""], ["4", '{"topics": {"topic_1": "yes"}}', ""],
                  ["5", '{"other": 1}', ""])
    first, second = out.rows
    assert first.topics_replace == {"topic_1": True, "topic_2": False} and first.topics == {"topic_3": False}
    assert second.topics_replace is None and second.topics == {"topic_3": True}
    assert [e[2][0].code for e in out.errors] == ["invalid_preferences"] * 3


def test_empty_cells_are_ignored_by_default_and_cleared_on_request():
    header = ["id", "name", "unsubscribed", "cio_subscription_preferences.topics.t1"]
    kept = rows_of(header, ["1", "", "", ""]).rows[0]
    assert kept.set == {} and kept.clear == () and kept.topics_clear == ()
    cleared = rows_of(header, ["1", "", "", ""], clear=True).rows[0]
    assert set(cleared.clear) == {"name", "unsubscribed"} and cleared.topics_clear == ("t1",)


def test_identifier_cells_are_never_attributes():
    row = rows_of(["cio_id", "id", "email", "name"], ["a1", "7", "x@y.com", "N"]).rows[0]
    assert (row.cio_id, row.id, row.email, row.set) == ("a1", "7", "x@y.com", {"name": "N"})


def test_reserved_names_as_people_write_them():
    cols = plan(["ID", "Email Address", "Created At", "first name"])
    assert (cols.id, cols.email, cols.created_at, cols.attributes) == (0, 1, 2, ((3, "first name"),))
    with pytest.raises(FileProblem, match="both set 'email'"):
        plan(["id", "email", "E-mail"])
