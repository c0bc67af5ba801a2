"""The HTTP service as a script in any language meets it: `backfill serve` on a free port, real workers.

Requests go over real sockets (httpx); keys come from the CLI; data_file_url downloads come from a
plain HTTP server the test runs on 127.0.0.2, the one address the service is told to allow.
"""
from __future__ import annotations

import http.server
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from worker.events.rules import Campaign
from worker.store.embedded import free_port

from .helpers import wait_until, write

ROOT = Path(__file__).resolve().parents[2]
FINAL = {"completed", "completed_with_errors", "failed", "cancelled", "interrupted", "partially_failed"}


class Service:
    """A `backfill serve` process and a client for it."""

    def __init__(self, home: Path, *args: str, verify: ssl.SSLContext | bool = True, **settings: str) -> None:
        self.port = free_port()
        exe = shutil.which("backfill", path=str(Path(sys.executable).parent)) or "backfill"
        env = {**os.environ, "BACKFILL_HOME": str(home), "BACKFILL_API_PORT": str(self.port),
               "BACKFILL_API_FETCH_ALLOW": "127.0.0.2", **settings}
        self.log = (home / "serve.log").open("wb")
        self.process = subprocess.Popen([exe, "serve", *args], env=env, cwd=ROOT, stdout=self.log,
                                        stderr=subprocess.STDOUT)
        self.url = f"{'https' if '--certfile' in args else 'http'}://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1, verify=verify).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError((home / "serve.log").read_text()[-3000:])

    def client(self, key: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmHWM")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@pytest.fixture(scope="module")
def service(redis_url, workers, tmp_path_factory):
    running = Service(tmp_path_factory.mktemp("serve"))
    yield running
    running.stop()


@pytest.fixture
def keys(backfill):
    """An import key and a read key, made with the CLI as an operator would."""
    made = {}
    for scope in ("import", "read"):
        done = backfill("keys", "create", "--name", f"test {scope}", "--scope", scope)
        assert done.returncode == 0, done.stderr
        made[scope] = done.stdout.decode().strip()
    return made


def wait_final(client: httpx.Client, import_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client.get(f"/v1/imports/{import_id}").json()
        if state["status"] in FINAL:
            return state
        time.sleep(0.1)
    raise AssertionError(f"import {import_id} still {state['status']}")


EVENTS = "email,event_name,time\nann@example.com,Signed up,2024-01-01T00:00:00Z\nbob@example,Signed up,2024-01-01T00:00:00Z\n"


def test_keys_scopes_and_revocation(service, keys, backfill):
    with service.client(None) as anonymous:
        answer = anonymous.get("/v1/imports")
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "unauthorized"
        assert answer.headers["www-authenticate"] == "Bearer"
    with service.client("bfk_00000000_not-a-key") as wrong:
        assert wrong.get("/v1/imports").status_code == 401
    with service.client(keys["read"]) as reader:
        assert reader.get("/v1/imports").status_code == 200
        refused = reader.post("/v1/imports", files={"file": ("e.csv", EVENTS.encode())})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
        key_id = keys["read"].split("_")[1]
        assert backfill("keys", "revoke", key_id).returncode == 0
        revoked = reader.get("/v1/imports")
        assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]["message"]
    listed = backfill("keys", "list", "--json")
    assert '"revoked_ms": null' in listed.stdout.decode() and keys["import"] not in listed.stdout.decode()


def test_upload_poll_report_and_problem_files(service, keys, tmp_path):
    with service.client(keys["import"]) as client:
        answer = client.post("/v1/imports", files={"file": ("signups.csv", EVENTS.encode())},
                             data={"create_people": "true", "timezone": "Europe/Paris"})
        assert answer.status_code == 202, answer.text
        import_id = answer.json()["import_id"]
        assert answer.headers["location"] == f"/v1/imports/{import_id}"
        state = wait_final(client, import_id)
        assert (state["status"], state["source"], state["rows"], state["imported"], state["errors"]) == \
            ("completed_with_errors", "signups.csv", 2, 1, 1)
        report = client.get(f"/v1/imports/{import_id}/report").json()
        assert report["imported"] == 1 and report["timezone"] == "Europe/Paris"
        errors = client.get(f"/v1/imports/{import_id}/errors.csv")
        assert errors.headers["content-type"].startswith("text/csv")
        lines = errors.text.lstrip("\ufeff").splitlines()
        assert lines[0] == "email,event_name,time,_row,_errors" and lines[1].startswith("bob@example,Signed up,")
        assert client.get(f"/v1/imports/{import_id}/warnings.csv").status_code == 200
        listed = client.get("/v1/imports", params={"limit": 1}).json()
        assert [i["import_id"] for i in listed["imports"]] == [import_id]
        assert client.get("/v1/imports/nope").status_code == 404
        assert client.get("/v1/imports/nope/errors.csv").status_code == 404
        store_of().triggers.add_campaign(Campaign("welcome", "Signed up", 0))
        assert client.get("/v1/campaigns").json() == [{"name": "welcome", "event": "Signed up", "delay_s": 0,
                                                       "match": "exact"}]
        person = client.get("/v1/people/ann@example.com")
        assert person.status_code == 200 and person.json()["email"] == "ann@example.com"
        assert client.get("/v1/people/nobody@example.com").status_code == 404
        # a raw CSV body, the options in the query string
        raw = client.post("/v1/imports", content=EVENTS.encode(), params={"source": "raw.csv"},
                          headers={"Content-Type": "text/csv"})
        assert raw.status_code == 202
        state = wait_final(client, raw.json()["import_id"])
        # the same rows again: ann's event is a duplicate, bob's address is still wrong
        assert (state["source"], state["imported"], state["duplicates"], state["errors"]) == ("raw.csv", 0, 1, 1)


def test_options_are_checked_before_the_import_is_accepted(service, keys):
    with service.client(keys["import"]) as client:
        upload = {"file": ("e.csv", EVENTS.encode())}
        for data, needle in (({"timezone": "Mars/Olympus"}, "unknown time zone"),
                             ({"delimiter": "ab"}, "delimiter 'ab'"),
                             ({"encoding": "klingon"}, "unknown encoding"),
                             ({"date_formats": "%Q"}, "bad directive"),
                             ({"dst": "first"}, "dst"),
                             ({"trigger_window": "soon"}, "not a duration"),
                             ({"colour": "blue"}, "colour"),
                             ({"data_to_process": "only_new"}, "people imports")):
            answer = client.post("/v1/imports", files=upload, data=data)
            assert answer.status_code == 422 and needle in answer.json()["error"]["message"], answer.text
            assert "--" not in answer.json()["error"]["message"]  # the form's field names, not the CLI's options
        assert client.post("/v1/imports", data={"create_people": "true"}).status_code in (400, 415)
        no_file = client.post("/v1/imports", files={"other": ("e.csv", b"x")})
        assert no_file.status_code == 400 and no_file.json()["error"]["code"] == "no_file"
        assert client.post("/v1/imports", content=b"{", headers={"Content-Type": "application/json"}).status_code == 400
        assert client.post("/v1/imports", content=b"x", headers={"Content-Type": "image/png"}).status_code == 415
        scheme = client.post("/v1/imports", json={"data_file_url": "file:///etc/passwd"})
        assert scheme.status_code == 422 and scheme.json()["error"]["code"] == "url_scheme"
        assert client.get("/v1/imports", params={"limit": 0}).status_code == 422
        unknown = client.get("/v1/nope")
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
        assert client.delete("/v1/imports/x").json()["error"]["code"] == "method_not_allowed"
        named = client.post("/v1/imports", files={"file": ("../../etc/orders.csv", EVENTS.encode())})
        assert wait_final(client, named.json()["import_id"])["source"] == "orders.csv"
        empty = client.post("/v1/imports", content=b"", params={"source": "empty.csv"}, headers={"Content-Type": "text/csv"})
        failed = wait_final(client, empty.json()["import_id"])
        assert failed["failure_code"] == "empty_file" and failed["failure"].startswith("empty.csv is empty")



def test_an_uploaded_mac_roman_file_is_refused_naming_it_and_read_with_the_encoding_field(service, keys):
    """Excel for Mac's "CSV (Macintosh)" (Mac Roman, CR line ends) is read as the CLI reads it."""
    mac = "email,event_name,city\rann@example.com,Bestellung,Zürich\rbob@example.com,Bestellung,Straße\r"
    upload = {"file": ("mac.csv", mac.encode("mac_roman"))}
    with service.client(keys["import"]) as client:
        refused = wait_final(client, client.post("/v1/imports", files=upload).json()["import_id"])
        assert refused["failure_code"] == "unlikely_encoding" and "mac_roman ('Zürich')" in refused["failure"]
        answer = client.post("/v1/imports", files=upload, data={"encoding": "mac_roman", "create_people": "true"})
        state = wait_final(client, answer.json()["import_id"])
        assert (state["status"], state["imported"], state["errors"]) == ("completed", 2, 0)
        stored = {e["person"]["email"]: e["data"] for e in store_of().events.read(answer.json()["import_id"])}
        assert stored == {"ann@example.com": {"city": "Zürich"}, "bob@example.com": {"city": "Straße"}}

class _Files(http.server.BaseHTTPRequestHandler):
    """Serves the test's events file, and redirects to where the query says."""

    def do_GET(self):
        if self.path == "/big.csv":  # larger than the limit, said by no Content-Length
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"email,event_name\n" + b"someone@example.com,Signed up\n" * 10_000)
            return
        if self.path == "/slow.csv":  # a byte at a time, never done within the time limit
            self.send_response(200)
            self.end_headers()
            for _ in range(40):
                self.wfile.write(b"e")
                self.wfile.flush()
                time.sleep(0.25)
            return
        if self.path == "/stall.csv":  # holds the service's only producer thread for a while
            time.sleep(4)
            body = EVENTS.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path.startswith("/redirect?to="):
            self.send_response(302)
            self.send_header("Location", self.path.split("=", 1)[1])
            self.end_headers()
            return
        body = EVENTS.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def files():
    port = free_port()
    servers = [http.server.ThreadingHTTPServer((host, port), _Files) for host in ("127.0.0.1", "127.0.0.2")]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield port
    for server in servers:
        server.shutdown()


def test_dst_chooses_the_instant_of_a_repeated_local_time_over_http(service, keys):
    """A time in New York's repeated hour (2024-11-03 01:30) is an error unless ``dst`` chooses."""
    text = b"email,event_name,time\nann@example.com,Rang,2024-11-03 01:30:00\n"
    with service.client(keys["import"]) as client:
        for dst, imported in ((None, 0), ("later", 1)):
            options = {"create_people": "true", "timezone": "America/New_York", **({"dst": dst} if dst else {})}
            answer = client.post("/v1/imports", files={"file": ("calls.csv", text)}, data=options)
            assert answer.status_code == 202, answer.text
            import_id = answer.json()["import_id"]
            assert wait_final(client, import_id)["imported"] == imported
        assert client.get(f"/v1/imports/{import_id}/report").json()["dst"] == "later"
        [event] = store_of().events.read(import_id)
        assert event["timestamp"] == 1730615400  # 06:30Z, its second instant (EST)


def test_data_file_url_is_fetched_only_from_allowed_addresses(service, keys, files):
    port = files
    with service.client(keys["import"]) as client:
        def outcome(url: str) -> dict:
            answer = client.post("/v1/imports", json={"data_file_url": url, "create_people": True})
            assert answer.status_code == 202, answer.text
            return wait_final(client, answer.json()["import_id"])

        allowed = outcome(f"http://127.0.0.2:{port}/events.csv")
        assert (allowed["status"], allowed["imported"]) == ("completed_with_errors", 1)
        for url in (f"http://127.0.0.1:{port}/events.csv",             # loopback
                    "http://169.254.169.254/latest/meta-data/",         # the cloud's metadata address
                    f"http://localhost:{port}/events.csv",              # a name for a loopback address
                    f"http://127.0.0.2:{port}/redirect?to=http://127.0.0.1:{port}/events.csv",
                    f"http://127.0.0.2:{port}/redirect?to=http://169.254.169.254/latest/"):
            refused = outcome(url)
            assert (refused["status"], refused["failure_code"]) == ("failed", "url_forbidden"), (url, refused)
            assert "inside the network" in refused["failure"]
        # (a DNS name answering with a private address: tests/unit/test_http_rules.py, the resolver's answer
        # given; this machine's names all resolve to loopback, refused above as localhost)


def test_a_download_stops_at_the_size_and_time_limits(redis_url, workers, keys, files, tmp_path):
    limited = Service(tmp_path, BACKFILL_API_MAX_UPLOAD_BYTES="100000", BACKFILL_API_FETCH_TIMEOUT_S="2")
    try:
        with limited.client(keys["import"]) as client:
            for path, code in (("/big.csv", "url_too_large"), ("/slow.csv", "url_timeout")):
                answer = client.post("/v1/imports", json={"data_file_url": f"http://127.0.0.2:{files}{path}"})
                started = time.monotonic()
                state = wait_final(client, answer.json()["import_id"])
                assert (state["status"], state["failure_code"]) == ("failed", code), state
                assert time.monotonic() - started < 8
        # (the refusal is written first, the file deleted as the producer thread ends)
        wait_until(lambda: not list((tmp_path / "uploads").iterdir()), 10, "the refused downloads deleted")
    finally:
        limited.stop()


def test_an_upload_over_the_limit_is_refused_while_it_streams(redis_url, workers, keys, tmp_path):
    small = Service(tmp_path, BACKFILL_API_MAX_UPLOAD_BYTES="100000")
    try:
        with small.client(keys["import"]) as client:
            big = b"email,event_name\n" + b"someone@example.com,Signed up\n" * 10_000
            declared = client.post("/v1/imports", files={"file": ("big.csv", big)})
            assert declared.status_code == 413 and declared.json()["error"]["code"] == "too_large"

            def chunked():
                yield big  # no Content-Length: the limit is found while the bytes arrive

            streamed = client.post("/v1/imports", content=chunked(), headers={"Content-Type": "text/csv"})
            assert streamed.status_code == 413
        assert not list((tmp_path / "uploads").iterdir())  # nothing left on disk
    finally:
        small.stop()


def test_a_100_mb_upload_is_streamed_to_disk_with_flat_memory(service, keys):
    block = b"".join(b"row%07d@example.com,Signed up,2024-01-01T00:00:00Z\n" % i for i in range(20_000))
    blocks = -(-100 * 1024 * 1024 // len(block))

    def body():
        yield b"--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.csv\"\r\n\r\n"
        yield b"nobody,what\n"  # a header with no person column: refused once the file is scanned
        for _ in range(blocks):
            yield block
        yield b"\r\n--b0undary--\r\n"

    before = service.peak_rss_mb()
    with service.client(keys["import"]) as client:
        answer = client.post("/v1/imports", content=body(),
                             headers={"Content-Type": "multipart/form-data; boundary=b0undary"})
        assert answer.status_code == 202, answer.text
        state = wait_final(client, answer.json()["import_id"], timeout=120)
    assert state["status"] == "failed" and state["failure_code"] == "no_person_column", state
    grown = service.peak_rss_mb() - before
    assert grown < 40, f"the service's peak memory grew by {grown:.0f} MB for a {blocks * len(block) >> 20} MB upload"


def test_cancel_mid_import_over_http(service, keys, tmp_path):
    rows = "\n".join(f"p{i}@example.com,Viewed,2024-01-01T00:00:00Z" for i in range(20_000))
    path = write(tmp_path, "many.csv", "email,event_name,time\n" + rows + "\n")
    with service.client(keys["import"]) as client:
        answer = client.post("/v1/imports", files={"file": ("many.csv", path.read_bytes())},
                             data={"create_people": "true"})
        import_id = answer.json()["import_id"]
        deadline = time.monotonic() + 30
        while client.get(f"/v1/imports/{import_id}").json()["status"] == "accepted" and time.monotonic() < deadline:
            time.sleep(0.05)
        early = client.get(f"/v1/imports/{import_id}/errors.csv")
        assert early.status_code == 409 and early.json()["error"]["code"] == "not_finished"
        cancelled = client.post(f"/v1/imports/{import_id}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["cancelled"] is True
        state = wait_final(client, import_id, timeout=120)
        assert state["status"] == "cancelled"
        report = client.get(f"/v1/imports/{import_id}/report").json()
        assert report["imported"] < 20_000
        assert report["imported"] + report["errors"] + report.get("rows_not_queued", 0) == 20_000
        again = client.post(f"/v1/imports/{import_id}/cancel").json()
        assert again["cancelled"] is False and again["status"] == "cancelled"


def test_health_readiness_and_the_openapi_document(service):
    with service.client(None) as client:
        assert client.get("/healthz").json() == {"ok": True}
        assert client.get("/readyz").status_code == 200
        document = client.get("/openapi.json").json()
    paths = set(document["paths"])
    assert {"/v1/imports", "/v1/imports/{import_id}", "/v1/imports/{import_id}/report",
            "/v1/imports/{import_id}/errors.csv", "/v1/imports/{import_id}/warnings.csv",
            "/v1/imports/{import_id}/cancel", "/v1/imports/{import_id}/retry", "/v1/imports/{import_id}/undo",
            "/healthz", "/readyz"} <= paths
    assert "HTTPBearer" in document["components"]["securitySchemes"]
    assert document["paths"]["/v1/imports"]["get"]["responses"]["401"]["content"]["application/json"]["schema"] == \
        {"$ref": "#/components/schemas/ErrorBody"}
    assert set(document["paths"]["/v1/imports"]["post"]["requestBody"]["content"]) == \
        {"multipart/form-data", "application/json", "text/csv"}


def test_retry_of_the_corrected_errors_file_links_and_combines(service, keys, backfill, tmp_path):
    three = EVENTS + "cat@example.com,,2024-01-01T00:00:00Z\n"  # bob's address and cat's missing name fail
    with service.client(keys["import"]) as client:
        first = client.post("/v1/imports", files={"file": ("three.csv", three.encode())}, data={"create_people": "true"})
        original = first.json()["import_id"]
        assert wait_final(client, original)["errors"] == 2
        errors = client.get(f"/v1/imports/{original}/errors.csv").text
        fixed = errors.replace("bob@example,", "bob@example.com,")  # cat's row is sent again unfixed
        answer = client.post(f"/v1/imports/{original}/retry", files={"file": ("fixed.csv", fixed.encode("utf-8"))})
        assert answer.status_code == 202, answer.text
        retry = answer.json()["import_id"]
        assert wait_final(client, retry)["imported"] == 1
        report = client.get(f"/v1/imports/{retry}/report").json()
        assert report["retry_of"] == original and report["create_people"] is True  # the original's options
        assert report["combined"] == {"import_ids": [original, retry], "status": "completed_with_errors",
                                      "rows": 3, "imported": 2, "duplicates": 0, "errors": 1}
        # the CLI does the same with the retry's own errors file: cat's row, now with a name
        still = client.get(f"/v1/imports/{retry}/errors.csv").text.replace("cat@example.com,,", "cat@example.com,Joined,")
        path = write(tmp_path, "still.csv", still)
        done = backfill("retry", retry, str(path), "--wait", "--json")
        assert done.returncode == 0, done.stderr
        last = __import__("orjson").loads(done.stdout)
        assert last["combined"]["import_ids"] == [original, retry, last["import_id"]]
        assert (last["combined"]["status"], last["combined"]["imported"], last["combined"]["errors"]) == \
            ("completed", 3, 0)
        assert client.get(f"/v1/imports/{original}").status_code == 200
        assert service_state(original)["retried_by"] == retry
        assert client.get(f"/v1/imports/{original}").json()["retried_by"] == retry
        clean = client.post(f"/v1/imports/{last['import_id']}/retry", files={"file": ("x.csv", b"x")})
        assert clean.status_code == 409 and "no failed rows" in clean.json()["error"]["message"]
        # what cannot be retried
        assert client.post("/v1/imports/nope/retry", files={"file": ("x.csv", b"x")}).status_code == 404
        refused = client.post("/v1/imports", files={"file": ("bad.csv", b"nobody,what\nx,y\n")})
        refused_id = refused.json()["import_id"]
        assert wait_final(client, refused_id)["status"] == "failed"
        again = client.post(f"/v1/imports/{refused_id}/retry", files={"file": ("x.csv", b"x")})
        assert again.status_code == 409 and again.json()["error"]["code"] == "not_retryable"
        extra = client.post(f"/v1/imports/{original}/retry", files={"file": ("x.csv", b"x")}, data={"trigger": "true"})
        assert extra.status_code == 422


def store_of():
    from producers.api import default_context

    return default_context().store


def service_state(import_id: str) -> dict:
    return store_of().imports.state(import_id)


def test_undo_over_http_takes_the_import_back_once(service, keys):
    with service.client(keys["import"]) as client:
        first = client.post("/v1/imports", files={"file": ("e.csv", EVENTS.encode())}, data={"create_people": "true"})
        import_id = first.json()["import_id"]
        assert wait_final(client, import_id)["imported"] == 1
        done = client.post(f"/v1/imports/{import_id}/undo")
        assert done.status_code == 200 and done.json()["marks_removed"] == 1, done.text
        assert client.get(f"/v1/imports/{import_id}").json()["undone_ms"] == done.json()["undone_ms"]
        again = client.post(f"/v1/imports/{import_id}/undo").json()
        assert again["already"] is True and again["undone_ms"] == done.json()["undone_ms"]
        redo = client.post("/v1/imports", files={"file": ("e.csv", EVENTS.encode())}, data={"create_people": "true"})
        assert wait_final(client, redo.json()["import_id"])["imported"] == 1  # not a duplicate any more
        people = client.post("/v1/imports", files={"file": ("p.csv", b"id,email\nu9,u9@example.com\n")},
                             data={"type": "people"})
        people_id = people.json()["import_id"]
        wait_final(client, people_id)
        refused = client.post(f"/v1/imports/{people_id}/undo")
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_undoable"
        assert client.post("/v1/imports/nope/undo").status_code == 404
        from worker import keys as redis_keys

        store_of().r.set(redis_keys.UNDO_LEASE, "imp-running", px=30_000)  # another undo runs: refused, naming it
        busy = client.post(f"/v1/imports/{redo.json()['import_id']}/undo")
        assert busy.status_code == 409 and "imp-running" in busy.json()["error"]["message"], busy.text
        store_of().r.delete(redis_keys.UNDO_LEASE)
    with service.client(keys["read"]) as reader:
        assert reader.post(f"/v1/imports/{import_id}/undo").status_code == 403


def test_a_redis_that_does_not_answer_is_503_not_a_traceback(redis_url, workers, tmp_path):
    down = Service(tmp_path, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    try:
        with down.client("bfk_00000000_whatever") as client:
            for answer in (client.get("/v1/imports"), client.post("/v1/imports", files={"file": ("e.csv", b"x")}),
                           client.get("/readyz")):
                assert answer.status_code == 503, answer.text
                assert answer.json()["error"]["code"] in ("unavailable", "not_ready")
    finally:
        down.stop()
    assert "Traceback" not in (tmp_path / "serve.log").read_text()


def test_no_import_stays_accepted_after_a_cancel_or_a_killed_service(redis_url, workers, store, keys, files, tmp_path):
    """One producer thread, held by a slow download: a cancel of the import downloading and of one waiting
    for the thread ends both ``cancelled``, status and report alike, and leaves no file. A service killed
    with imports accepted: the sweeper ends them ``interrupted`` (status and report alike), and the next
    service deletes the files they left."""
    from worker import tasks
    from worker.ops import sweeper

    def accept_two(client) -> tuple[str, str]:
        fetching = client.post("/v1/imports", json={"data_file_url": f"http://127.0.0.2:{files}/stall.csv"})
        waiting = client.post("/v1/imports", files={"file": ("later.csv", EVENTS.encode())})
        assert fetching.status_code == waiting.status_code == 202
        ids = fetching.json()["import_id"], waiting.json()["import_id"]
        assert [client.get(f"/v1/imports/{i}").json()["status"] for i in ids] == ["accepted", "accepted"]
        return ids

    def agreed(client, import_id: str) -> str:
        state = wait_final(client, import_id)
        report = client.get(f"/v1/imports/{import_id}/report").json()
        assert state["status"] == report["status"], (state, report)
        return state["status"]

    home = tmp_path / "one"
    home.mkdir()
    one = Service(home, BACKFILL_API_PRODUCERS="1")
    try:
        with one.client(keys["import"]) as client:
            ids = accept_two(client)
            for import_id in ids:
                assert client.post(f"/v1/imports/{import_id}/cancel").json()["cancelled"] is True
            assert [agreed(client, i) for i in ids] == ["cancelled", "cancelled"]
            time.sleep(5)  # the download ends and the thread takes the waiting import: both stay cancelled
            assert [agreed(client, i) for i in ids] == ["cancelled", "cancelled"]
        assert not list((home / "uploads").iterdir())
    finally:
        one.stop()

    home = tmp_path / "two"
    home.mkdir()
    killed = Service(home, BACKFILL_API_PRODUCERS="1")
    with killed.client(keys["import"]) as client:
        ids = accept_two(client)
    killed.process.kill()
    killed.process.wait()
    killed.log.close()
    assert len(list((home / "uploads").glob("*.upload"))) == 2
    time.sleep(0.3)  # silent for longer than the sweep's producer timeout
    swept = sweeper.sweep(store, 600, send_chunk=None, fail_chunk=None, send_notify=None,
                          send_report=lambda i: tasks.finalize_import.apply_async((i,)), producer_timeout_s=0.1)
    assert swept.interrupted == 2
    again = Service(home, BACKFILL_API_PRODUCERS="1")
    try:
        with again.client(keys["import"]) as client:
            assert [agreed(client, i) for i in ids] == ["interrupted", "interrupted"]
        assert not list((home / "uploads").glob("*.upload"))
    finally:
        again.stop()


def test_the_probes_answer_head(service):
    """A load balancer or an uptime monitor asks HEAD /healthz: 405 read as "down"."""
    for path in ("/healthz", "/readyz"):
        got, head = httpx.get(service.url + path), httpx.head(service.url + path)
        assert head.status_code == got.status_code == 200 and head.content == b"", path
        assert head.headers["content-type"] == got.headers["content-type"]
