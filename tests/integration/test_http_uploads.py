"""Staged uploads over HTTP, as an import wizard uses them: a file uploaded once, inspected under one set of
options after another (its first rows judged by the workers' own row core), a dry run, then the import,
all from the same upload. A real `backfill serve`, real workers, a private Redis."""
from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import pytest

from producers.web.models import Inspection

from .test_http import Service, wait_final

#: The time column holds a word on row 2; the "when" column holds the real times.
WRONG_TIME = ("email,event_name,time,when\n"
              "ann@example.com,Signed up,yesterday,2024-01-01T00:00:00Z\n"
              "bob@example.com,Bought,2024-01-02T00:00:00Z,2024-01-02T00:00:00Z\n"
              "cid@example.com,Bought,2024-01-03T00:00:00Z,2024-01-03T00:00:00Z\n")
LIMIT = 100_000


@pytest.fixture(scope="module")
def service(redis_url, workers, tmp_path_factory):
    home = tmp_path_factory.mktemp("staged")
    running = Service(home, BACKFILL_API_MAX_UPLOAD_BYTES=str(LIMIT))
    running.home = home  # type: ignore[attr-defined]
    yield running
    running.stop()


@pytest.fixture
def keys(store):
    return {scope: store.apikeys.create(f"test {scope}", scope)[1] for scope in ("import", "read")}


def staged_files(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "uploads").glob("*.staged*"))


def test_upload_once_inspect_fix_dry_run_then_import(service, keys, backfill, tmp_path):
    with service.client(keys["import"]) as client, service.client(keys["read"]) as reader:
        made = client.post("/v1/uploads", files={"file": ("signups.csv", WRONG_TIME.encode())})
        assert made.status_code == 201, made.text
        upload = made.json()
        assert set(upload) == {"upload_id", "name", "bytes", "expires_at"}
        assert upload["name"] == "signups.csv" and upload["bytes"] == len(WRONG_TIME)
        assert upload["expires_at"].endswith("Z") and upload["expires_at"][:2] == "20"
        upload_id = upload["upload_id"]
        assert reader.get(f"/v1/uploads/{upload_id}").json() == upload

        # read as it is: the word in the time column is row 2's error, in column C ("time")
        seen = client.post(f"/v1/uploads/{upload_id}/inspect", json={"sample": 2, "create_people": True})
        assert seen.status_code == 200, seen.text
        seen = seen.json()
        assert seen["ok"] is True and seen["rows"] == 3 and seen["file"] == "signups.csv"
        assert [s["row"] for s in seen["sample"]] == [2, 3]
        first, second = seen["sample"]
        assert first["outcome"] == "error" and first["cells"][2] == "yesterday"
        [problem] = first["problems"]
        assert problem["level"] == "error" and problem["column"] == "C" and problem["name"] == "time"
        assert problem["code"] and "yesterday" in problem["message"]
        assert second == {"row": 3, "cells": WRONG_TIME.splitlines()[2].split(","), "outcome": "ok", "problems": []}
        Inspection.model_validate(seen)  # (the answer is what the OpenAPI document says, to the field)
        # the import's errors file says the same of that row
        unfixed = client.post("/v1/imports", json={"upload_id": upload_id, "create_people": True}).json()
        assert wait_final(reader, unfixed["import_id"])["errors"] == 1
        errors_file = reader.get(f"/v1/imports/{unfixed['import_id']}/errors.csv").text.splitlines()
        assert errors_file[1].startswith("ann@example.com,Signed up,yesterday,") and ",2," in errors_file[1]
        assert f"{problem['code']}: {problem['message']} (column 'time')" in errors_file[1]
        # what `backfill inspect --json` prints of the same file, to the letter (the file's name aside)
        path = tmp_path / "signups.csv"
        path.write_text(WRONG_TIME)
        printed = json.loads(backfill("inspect", str(path), "--json").stdout)
        assert {k: v for k, v in seen.items() if k not in ("ok", "sample", "file")} == \
            {k: v for k, v in printed.items() if k != "file"}

        # the "when" column read as the time, the word's column left out: every row reads
        options = {"mapping": {"when": "time"}, "skip": ["time"], "create_people": True}
        fixed = client.post(f"/v1/uploads/{upload_id}/inspect", json=options).json()
        assert fixed["ok"] is True and [s["outcome"] for s in fixed["sample"]] == ["ok"] * 3
        assert {c["name"]: c["role"] for c in fixed["columns"]}["time"] == "dropped"

        dry = client.post("/v1/imports", json={**options, "upload_id": upload_id, "dry_run": True})
        assert dry.status_code == 202, dry.text
        dry_state = wait_final(reader, dry.json()["import_id"])
        report = reader.get(f"/v1/imports/{dry.json()['import_id']}/report").json()
        assert report["dry_run"] is True and dry_state["imported"] == 3 and dry_state["source"] == "signups.csv"

        real = client.post("/v1/imports", json={**options, "upload_id": upload_id})
        assert real.status_code == 202, real.text
        state = wait_final(reader, real.json()["import_id"])
        assert (state["status"], state["rows"], state["imported"], state["errors"]) == ("completed", 3, 3, 0)
        report = reader.get(f"/v1/imports/{real.json()['import_id']}/report").json()
        assert report["dry_run"] is False

        # still there for another use, until deleted
        assert reader.get(f"/v1/uploads/{upload_id}").status_code == 200
        assert reader.delete(f"/v1/uploads/{upload_id}").status_code == 403
        assert client.delete(f"/v1/uploads/{upload_id}").status_code == 204
        gone = reader.get(f"/v1/uploads/{upload_id}")
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
        late = client.post("/v1/imports", json={"upload_id": upload_id})
        assert late.status_code == 404 and late.json()["error"]["code"] == "not_found"
        assert client.delete(f"/v1/uploads/{upload_id}").status_code == 404
        assert upload_id not in "".join(staged_files(service.home))


def test_refused_files_and_wrong_options(service, keys):
    with service.client(keys["import"]) as client:
        no_person = client.post("/v1/uploads?name=notes.csv", content=b"colour,size\nred,1\n",
                                headers={"Content-Type": "text/csv"}).json()["upload_id"]
        refused = client.post(f"/v1/uploads/{no_person}/inspect", json={})
        assert refused.status_code == 200
        assert refused.json()["ok"] is False and refused.json()["refusal"]["code"] == "no_person_column"
        assert "--map COLUMN=email" in refused.json()["refusal"]["message"]  # (the CLI's words: the fix)

        latin = client.post("/v1/uploads", content="email,event_name\nzoë@example.com,Café\n".encode("cp1252"),
                            headers={"Content-Type": "text/csv"}).json()["upload_id"]
        forced = client.post(f"/v1/uploads/{latin}/inspect", json={"encoding": "utf-8"}).json()
        assert forced["ok"] is False and forced["refusal"]["code"] == "bad_encoding"
        assert Inspection.model_validate(forced).refusal is not None
        assert forced["refusal"]["message"].startswith("upload.csv is not valid utf-8")  # (not the server's path)
        sniffed = client.post(f"/v1/uploads/{latin}/inspect", json={}).json()
        assert sniffed["ok"] is True and sniffed["encoding"] == "cp1252"
        assert sniffed["sample"][0]["cells"] == ["zoë@example.com", "Café"]

        zipped = client.post("/v1/uploads?name=e.csv.gz", content=gzip.compress(WRONG_TIME.encode()),
                             headers={"Content-Type": "application/gzip"}).json()["upload_id"]
        unzipped = client.post(f"/v1/uploads/{zipped}/inspect", json={}).json()
        assert unzipped["ok"] is True and unzipped["rows"] == 3 and unzipped["sample"][0]["outcome"] == "error"

        for wrong in ({"timezone": "Mars/Olympus"}, {"sample": 0}, {"sample": 201}, {"nope": 1}):
            answer = client.post(f"/v1/uploads/{latin}/inspect", json=wrong)
            assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_option", wrong
        both = client.post("/v1/imports", json={"upload_id": latin, "data_file_url": "https://example.com/a.csv"})
        assert both.status_code == 422 and both.json()["error"]["code"] == "invalid_option"
        neither = client.post("/v1/imports", json={"trigger": True})
        assert neither.status_code == 422 and neither.json()["error"]["code"] == "invalid_option"
        unknown = client.post("/v1/uploads/0123456789abcdef0123456789abcdef/inspect", json={})
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
        hostile = client.get("/v1/uploads/..%2F..%2Fetc%2Fpasswd")
        assert hostile.status_code == 404
        named = client.post("/v1/uploads?name=a%0Ab.csv", content=b"x\n", headers={"Content-Type": "text/csv"})
        assert named.status_code == 422 and named.json()["error"]["code"] == "invalid_option"
        extra = client.post("/v1/uploads", files={"file": ("e.csv", b"a\n")}, data={"trigger": "true"})
        assert extra.status_code == 422


def test_read_key_and_size_limit(service, keys):
    before = staged_files(service.home)
    with service.client(keys["read"]) as reader:
        refused = reader.post("/v1/uploads", files={"file": ("e.csv", WRONG_TIME.encode())})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
        assert reader.post("/v1/uploads/0123456789abcdef0123456789abcdef/inspect", json={}).status_code == 403
    with service.client(keys["import"]) as client:
        big = b"email,event_name\n" + b"ann@example.com,Signed up\n" * (LIMIT // 20)
        declared = client.post("/v1/uploads", content=big, headers={"Content-Type": "text/csv"})
        assert declared.status_code == 413 and declared.json()["error"]["code"] == "too_large"
        streamed = client.post("/v1/uploads", content=iter([big[:50_000], big[50_000:]]),
                               headers={"Content-Type": "text/csv"})
        assert streamed.status_code == 413 and streamed.json()["error"]["code"] == "too_large"
        form = client.post("/v1/uploads", files={"file": ("big.csv", big)})
        assert form.status_code == 413
    assert staged_files(service.home) == before  # nothing left of them


def test_expiry_cap_and_restart(redis_url, workers, store, tmp_path):
    key = store.apikeys.create("test", "import")[1]
    settings = {"BACKFILL_API_STAGED_TTL_S": "3", "BACKFILL_API_STAGED_MAX": "2"}
    first = Service(tmp_path, **settings)
    try:
        with first.client(key) as client:
            ids = [client.post("/v1/uploads", files={"file": (f"{n}.csv", WRONG_TIME.encode())}).json()["upload_id"]
                   for n in range(2)]
            full = client.post("/v1/uploads", files={"file": ("3.csv", WRONG_TIME.encode())})
            assert full.status_code == 429 and full.json()["error"]["code"] == "too_many_uploads"
    finally:
        first.stop()
    second = Service(tmp_path, **settings)  # a restart keeps the uploads that have not expired
    try:
        with second.client(key) as client:
            assert client.get(f"/v1/uploads/{ids[0]}").status_code == 200
            time.sleep(3.2)
            expired = client.get(f"/v1/uploads/{ids[0]}")
            assert expired.status_code == 404 and expired.json()["error"]["code"] == "not_found"
            assert client.post("/v1/imports", json={"upload_id": ids[0]}).status_code == 404
            again = client.post("/v1/uploads", files={"file": ("4.csv", WRONG_TIME.encode())})
            assert again.status_code == 201  # the expired ones no longer count: deleted, asked for or not
            assert staged_files(tmp_path) == sorted(f"{again.json()['upload_id']}{suffix}"
                                                    for suffix in (".staged", ".staged.json"))
    finally:
        second.stop()
    time.sleep(3.2)
    third = Service(tmp_path, **settings)  # a start deletes what expired, asked for or not
    third.stop()
    assert staged_files(tmp_path) == []


def test_one_upload_used_at_once_and_hostile_names(service, keys):
    from concurrent.futures import ThreadPoolExecutor

    with service.client(keys["import"]) as client, service.client(keys["read"]) as reader:
        made = client.post("/v1/uploads?name=..%2F..%2Fetc%2Fp%C3%A4sswd%5C..%5Cx.csv", content=WRONG_TIME.encode(),
                           headers={"Content-Type": "text/csv"})
        assert made.status_code == 201 and made.json()["name"] == "x.csv"  # (only a name: never a path)
        upload_id = made.json()["upload_id"]
        fixed = {"mapping": {"when": "time"}, "skip": ["time"], "create_people": True}

        def inspect(n: int) -> dict:
            return client.post(f"/v1/uploads/{upload_id}/inspect", json=fixed if n % 2 else {"sample": 1}).json()

        def dry_run(_: int) -> str:
            answer = client.post("/v1/imports", json={**fixed, "upload_id": upload_id, "dry_run": True})
            assert answer.status_code == 202, answer.text
            return answer.json()["import_id"]

        with ThreadPoolExecutor(8) as pool:
            inspections = list(pool.map(inspect, range(6)))
            dry_runs = list(pool.map(dry_run, range(3)))
        assert [len(i["sample"]) for i in inspections] == [1, 3] * 3
        assert all(i["ok"] and i["file"] == "x.csv" for i in inspections)
        for import_id in dry_runs:
            state = wait_final(reader, import_id)
            assert (state["status"], state["imported"], state["source"]) == ("completed", 3, "x.csv")
        # deleted between the inspection and the import: the import is refused, nothing is left behind
        assert client.delete(f"/v1/uploads/{upload_id}").status_code == 204
        late = client.post("/v1/imports", json={**fixed, "upload_id": upload_id})
        assert late.status_code == 404 and late.json()["error"]["code"] == "not_found"
        assert not list((service.home / "uploads").glob("*.inspect"))
        assert not [p for p in (service.home / "uploads").iterdir() if upload_id in p.name]


def test_a_column_mapped_to_no_name_or_both_mapped_and_skipped_is_refused(service, keys):
    """The CLI refuses ``--map price=``; over HTTP (JSON ``mapping``, the form's ``map``, the wizard's
    inspect) the same options are refused too, not read as a property named "" or silently skipped."""
    body = b"email,event_name,price,cost\nann@example.com,Bought,1,2\n"
    with service.client(keys["import"]) as client:
        staged = client.post("/v1/uploads", files={"file": ("m.csv", body)}).json()["upload_id"]
        for wrong in ({"mapping": {"price": ""}}, {"mapping": {"price": "  "}},
                      {"mapping": {"price": "amount"}, "skip": ["Price"]}):
            inspected = client.post(f"/v1/uploads/{staged}/inspect", json=wrong)
            assert inspected.status_code == 422 and inspected.json()["error"]["code"] == "invalid_option", wrong
            assert "price" in inspected.json()["error"]["message"].lower()
            started = client.post("/v1/imports", json={"upload_id": staged, **wrong, "dry_run": True})
            assert started.status_code == 422 and started.json()["error"]["code"] == "invalid_option", wrong
        form = client.post("/v1/imports", files={"file": ("m.csv", body)}, data={"map": "price=", "dry_run": "true"})
        assert form.status_code == 422 and form.json()["error"]["code"] == "invalid_option"
        fine = client.post(f"/v1/uploads/{staged}/inspect", json={"mapping": {"price": "amount"}, "skip": ["cost"]})
        assert fine.status_code == 200 and fine.json()["ok"] is True


def test_a_binary_file_named_csv_is_refused_as_what_it_is_not_as_utf16(service, keys):
    """An image, a database or a program renamed .csv: refused as not text (or by its kind), never
    sent to "save it as UTF-8" as if it were Excel's Unicode text; UTF-16 without a BOM still is."""
    png = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478"
                        "da63f8ffff3f0005fe02fea7d6a4c90000000049454e44ae426082")
    files = {"photo.csv": (png, "PNG image"), "data.csv": (b"SQLite format 3\x00" + bytes(4000), "SQLite"),
             "tool.csv": (Path("/bin/true").read_bytes()[:8000], "ELF"),
             "zeros.csv": (bytes(range(256)) * 8 + bytes(600), "NUL")}
    with service.client(keys["import"]) as client:
        for name, (body, words) in files.items():
            staged = client.post("/v1/uploads", files={"file": (name, body)}).json()["upload_id"]
            refusal = client.post(f"/v1/uploads/{staged}/inspect", json={}).json()["refusal"]
            assert refusal["code"] in ("not_csv", "binary_file") and words in refusal["message"], (name, refusal)
            assert "UTF-16" not in refusal["message"], name
        text = "email,event_name\nann@example.com,Signed up\n".encode("utf-16-le")
        staged = client.post("/v1/uploads", files={"file": ("unicode.csv", text)}).json()["upload_id"]
        refusal = client.post(f"/v1/uploads/{staged}/inspect", json={}).json()["refusal"]
        assert refusal["code"] == "not_csv" and "UTF-16" in refusal["message"]


def test_a_refused_header_comes_with_its_columns_so_a_mapping_can_settle_it(service, keys):
    """A file with no person column (a header the import refuses) is answered with its columns, so the
    wizard can offer "Map to" and read it again; a file with no header to show has none."""
    with service.client(keys["import"]) as client:
        staged = client.post("/v1/uploads", files={"file": ("crm.csv", b"Mail,Action\nann@example.com,Bought\n")})
        upload_id = staged.json()["upload_id"]
        refused = client.post(f"/v1/uploads/{upload_id}/inspect", json={}).json()
        assert refused["ok"] is False and refused["refusal"]["code"] == "no_person_column"
        assert Inspection.model_validate(refused).columns is not None
        assert [(c["column"], c["name"]) for c in refused["columns"]] == [("A", "Mail"), ("B", "Action")]
        mapped = client.post(f"/v1/uploads/{upload_id}/inspect",
                             json={"mapping": {"Mail": "email", "Action": "event_name"}}).json()
        assert mapped["ok"] is True and mapped["sample"][0]["outcome"] == "ok"
        empty = client.post("/v1/uploads", files={"file": ("e.csv", b"")}).json()["upload_id"]
        assert "columns" not in client.post(f"/v1/uploads/{empty}/inspect", json={}).json()


def test_a_name_that_would_look_like_another_is_refused(service, keys):
    """A file name with a bidirectional override (``report\\u202Evsc.exe`` shows as ``reportexe.csv`` in
    the console's list) or a line separator is refused as control characters are, by its code point."""
    with service.client(keys["import"]) as client:
        for name, shown in (("report\u202evsc.exe", "U+202E"), ("a\u2066b.csv", "U+2066"), ("a\u2028b.csv", "U+2028")):
            for answer in (client.post("/v1/uploads", files={"file": (name, b"email,event_name\n")}),
                           client.post("/v1/uploads", params={"name": name}, content=b"email,event_name\n",
                                       headers={"Content-Type": "text/csv"}),
                           client.post("/v1/imports", files={"file": (name, b"email,event_name\n")})):
                assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_option", name
                assert shown in answer.json()["error"]["message"]
        fine = client.post("/v1/uploads", files={"file": ("تقرير.csv", b"email,event_name\n")})  # (right to left)
        assert fine.status_code == 201 and fine.json()["name"] == "تقرير.csv"


def test_an_upload_takes_its_name_as_an_import_does_and_refuses_other_query_options(service, keys):
    """``?source=`` names a raw import's file (POST /v1/imports): an upload takes it too (it was silently
    named upload.csv); an option in the query (``trigger``) was silently dropped, and is refused."""
    with service.client(keys["import"]) as client:
        raw = {"content": b"email,event_name\n", "headers": {"Content-Type": "text/csv"}}
        named = client.post("/v1/uploads", params={"source": "orders.csv"}, **raw)
        assert named.status_code == 201 and named.json()["name"] == "orders.csv"
        assert client.post("/v1/uploads", params={"name": "o.csv"}, **raw).json()["name"] == "o.csv"
        for params in ({"name": "o.csv", "trigger": "true"}, {"create_people": "1"}):
            refused = client.post("/v1/uploads", params=params, **raw)
            assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_option", params
        form = client.post("/v1/uploads", params={"dry_run": "true"}, files={"file": ("f.csv", b"email\n")})
        assert form.status_code == 422 and "dry_run" in form.json()["error"]["message"]


def test_events_options_on_a_people_import_are_refused_everywhere(service, keys, backfill, tmp_path):
    """``trigger`` and ``create_people`` on a people import did nothing without a word (as
    ``data_to_process`` on an events import is refused, so are they): inspect, the import over HTTP and
    the CLI say the same."""
    body = b"id,email\n7,ann@example.com\n"
    with service.client(keys["import"]) as client:
        staged = client.post("/v1/uploads", files={"file": ("people.csv", body)}).json()["upload_id"]
        for wrong in ({"trigger": True}, {"create_people": True}):
            for answer in (client.post(f"/v1/uploads/{staged}/inspect", json={"type": "people", **wrong}),
                           client.post("/v1/imports", json={"upload_id": staged, "type": "people", **wrong})):
                assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_option", wrong
                assert "options of events imports" in answer.json()["error"]["message"]
                assert "--" not in answer.json()["error"]["message"]
        fine = client.post(f"/v1/uploads/{staged}/inspect", json={"type": "people"})
        assert fine.status_code == 200 and fine.json()["ok"] is True
    path = tmp_path / "people.csv"
    path.write_bytes(body)
    cli = backfill("import", str(path), "--type", "people", "--trigger", "--dry-run")
    assert cli.returncode != 0 and b"options of events imports" in cli.stdout + cli.stderr
