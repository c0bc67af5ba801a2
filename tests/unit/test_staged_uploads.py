"""Staged uploads without a service: their files, expiry and cap (producers.web.staged), and the
sample of a file's first rows judged by the workers' row core (producers.preview)."""
from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from producers.api import inspect
from producers.preview import describe, sample
from producers.web import staged
from producers.web.models import ApiError
from producers.web.staged import Staged, public


def staged_file(store: Staged, name: str = "e.csv", body: bytes = b"email,event_name\na@b.co,x\n") -> str:
    upload_id, path = store.reserve()
    path.write_bytes(body)
    store.keep(upload_id, name, len(body))
    return upload_id


def test_an_upload_is_kept_read_linked_and_deleted(tmp_path, monkeypatch):
    monkeypatch.setattr(staged, "time", SimpleNamespace(time=lambda: 1_796_478_000.75))  # 2026-12-05T13:40:00.750Z
    store = Staged(tmp_path, ttl_s=60, max_count=5)
    upload_id = staged_file(store)
    assert oct((tmp_path / f"{upload_id}.staged").stat().st_mode & 0o777) == "0o600"
    meta = store.get(upload_id)
    assert meta["expires_ms"] == 1_796_478_060_750
    assert public(meta) == {"upload_id": upload_id, "name": "e.csv", "bytes": 26, "expires_at": "2026-12-05T13:41:00Z"}
    dest = tmp_path / "x.upload"
    dest.touch()  # (reserved by the import: replaced by the link)
    assert store.link(upload_id, dest)["name"] == "e.csv"
    store.delete(upload_id)
    assert dest.read_bytes() == b"email,event_name\na@b.co,x\n"  # the reader's link outlives the delete
    with pytest.raises(ApiError) as gone:
        store.get(upload_id)
    assert (gone.value.status, gone.value.code) == (404, "not_found")
    with pytest.raises(ApiError):
        store.link(upload_id, tmp_path / "y.upload")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.upload"]


@pytest.mark.parametrize("upload_id", ["../../etc/passwd", "", "ABCDEF0123456789abcdef0123456789", "0" * 31, "0" * 33 + "/"])
def test_an_id_not_of_its_form_is_not_found_and_names_no_path(tmp_path, upload_id):
    store = Staged(tmp_path, ttl_s=60, max_count=5)
    with pytest.raises(ApiError) as refused:
        store.get(upload_id)
    assert refused.value.status == 404 and "passwd" not in str(refused.value)


def test_an_upload_still_arriving_is_not_found_and_counts_toward_the_cap(tmp_path):
    store = Staged(tmp_path, ttl_s=60, max_count=2)
    arriving, _ = store.reserve()
    with pytest.raises(ApiError):
        store.get(arriving)
    staged_file(store)
    with pytest.raises(ApiError) as full:
        store.reserve()
    assert (full.value.status, full.value.code) == (429, "too_many_uploads")
    store.abandon(arriving)
    staged_file(store)


def test_expired_uploads_are_deleted_and_free_their_place(tmp_path):
    store = Staged(tmp_path, ttl_s=1, max_count=1)
    old = staged_file(store)
    (tmp_path / f"{old}.staged.json.part").touch()  # (a metadata write a killed service left)
    time.sleep(1.05)
    assert store.sweep(force=True) == 1
    assert list(tmp_path.iterdir()) == []
    new = staged_file(store)
    assert store.get(new)["name"] == "e.csv"


def test_the_sample_is_the_first_rows_judged_as_the_workers_judge_them(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("email,event_name,time,when\n\n"
                    "ann@example.com,Signed up,yesterday,2024-01-01\n"
                    "bob@example,Bought,2024-01-02,2024-01-02\n"
                    "cid@example.com,Bought,2030-01-02,2024-01-02\n"
                    "dan@example.com,Bought,2024-01-02,2024-01-02\n")
    source, plan = inspect(path)
    try:
        rows = sample(source, plan, 3, now=time.mktime((2026, 1, 1, 0, 0, 0, 0, 0, 0)))
    finally:
        source.close()
    assert [(r["row"], r["outcome"]) for r in rows] == [(3, "error"), (4, "error"), (5, "warning")]
    assert [(p["column"], p["name"], p["level"]) for p in rows[0]["problems"]] == [("C", "time", "error")]
    assert [(p["code"], p["column"]) for p in rows[1]["problems"]] == [("invalid_email", "A")]
    assert [(p["code"], p["level"]) for p in rows[2]["problems"]] == [("future_time", "warning")]
    assert describe("shown.csv", plan)["file"] == "shown.csv" and describe("x", plan)["rows"] == 4

    source, plan = inspect(path, mapping={"when": "time"}, skip=("time",))
    try:
        rows = sample(source, plan, 200, timezone="Europe/Paris")
    finally:
        source.close()
    assert [r["outcome"] for r in rows] == ["ok", "error", "ok", "ok"]


def test_people_rows_are_judged_by_the_people_checks(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("id,email,created_at\n1,ann@example.com,2024-01-01\n2,not-an-address,later\n")
    source, plan = inspect(path, kind="people")
    try:
        rows = sample(source, plan, 20, kind="people")
    finally:
        source.close()
    assert rows[0]["outcome"] == "ok" and rows[1]["outcome"] == "error"
    assert {p["column"] for p in rows[1]["problems"]} <= {"B", "C"} and rows[1]["problems"]
