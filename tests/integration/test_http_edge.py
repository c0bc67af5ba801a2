"""The HTTP service's edge, met from outside as the faults were found: bodies without a bound, slow
senders, options that crashed later, secrets in URLs, addresses hidden in IPv6, the allowlist's
spelling, the tracking endpoints' 503s, ids and names with odd characters. Real `backfill serve`
processes over real sockets (httpx, or raw sockets where a client library would not misbehave so).
"""
from __future__ import annotations

import base64
import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest

from worker.store.embedded import free_port

from . import test_http
from .helpers import stream_reports, write
from .test_http import EVENTS, ROOT, Service, wait_final

LIMIT = 1_000_000  # the upload limit the edge service runs with


@pytest.fixture(scope="module")
def edge(redis_url, workers, tmp_path_factory):
    home = tmp_path_factory.mktemp("edge")
    running = Service(home, BACKFILL_API_MAX_UPLOAD_BYTES=str(LIMIT), BACKFILL_API_HEADER_TIMEOUT_S="2",
                      BACKFILL_API_BODY_TIMEOUT_S="2", BACKFILL_API_FETCH_TIMEOUT_S="2", BACKFILL_TRACK_IMPORT_S="1")
    running.home = home
    yield running
    running.stop()


@pytest.fixture
def keys(store):
    """An import key and a read key (on the Redis every test starts empty)."""
    return {scope: store.apikeys.create(f"edge {scope}", scope)[1] for scope in ("import", "read")}


def uploads(service) -> list[Path]:
    return list((service.home / "uploads").iterdir())


def imports_recorded(store) -> int:
    from worker import keys as redis_keys

    return store.r.zcard(redis_keys.IMPORTS_INDEX)


def answer_of(port: int, request: bytes, wait_s: float = 10) -> bytes:
    """Send ``request`` whole on a raw socket; what the service answers until it closes (or ``wait_s``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as sock:
        sock.sendall(request)
        received = b""
        try:
            while piece := sock.recv(65536):
                received += piece
        except (TimeoutError, ConnectionResetError):
            pass
    return received


# -- 2. bodies without a bound ---------------------------------------------------------------------------

def pieces(total: int, opening: bytes = b'{"data_file_url": "http://example.com/', closing: bytes = b'"}'):
    """A body of ``total`` bytes in 1 MB pieces, sent chunked (no Content-Length)."""
    yield opening
    block = b"a" * (1024 * 1024)
    for _ in range(total // len(block)):
        yield block
    yield closing


def test_json_bodies_and_form_fields_are_bounded_while_they_stream(edge, keys):
    with edge.client(keys["import"]) as client:
        before = edge.peak_rss_mb()
        answer = client.post("/v1/imports", content=pieces(40 * 1024 * 1024),
                             headers={"Content-Type": "application/json"})
        assert answer.status_code == 413 and answer.json()["error"]["code"] == "too_large", answer.text
        grown = edge.peak_rss_mb() - before
        assert grown < 15, f"a 40 MB JSON body took {grown:.0f} MB"

        declared = client.post("/v1/imports", content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                               headers={"Content-Type": "application/json"})
        assert declared.status_code == 413

        field = b"x" * (60 * 1024)

        def form():
            for _ in range(700):  # 42 MB of one repeated option
                yield b'--b0undary\r\nContent-Disposition: form-data; name="skip"\r\n\r\n' + field + b"\r\n"
            yield b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="e.csv"\r\n\r\n'
            yield EVENTS.encode() + b"\r\n--b0undary--\r\n"

        before = edge.peak_rss_mb()
        many = client.post("/v1/imports", content=form(),
                           headers={"Content-Type": "multipart/form-data; boundary=b0undary"})
        assert many.status_code == 413 and many.json()["error"]["code"] == "form_too_large", many.text
        grown = edge.peak_rss_mb() - before
        assert grown < 15, f"42 MB of form fields took {grown:.0f} MB"
    assert not uploads(edge)


def test_a_length_over_the_limit_leaves_no_file_behind(edge, keys):
    answer = answer_of(edge.port, (f"POST /v1/imports HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {keys['import']}\r\n"
                                   "Content-Type: text/csv\r\nContent-Length: 3000000000\r\n\r\nemail\n").encode(), wait_s=5)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert not uploads(edge)


# -- 5. slow senders --------------------------------------------------------------------------------------

def _trickle(port: int, head: bytes, then: bytes, sockets: int, seconds: float) -> list[float | None]:
    """Open ``sockets`` connections, send ``head`` on each, then ``then`` a byte every half second; how
    long each stayed open (None: still open after ``seconds``)."""
    opened = []
    for _ in range(sockets):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.settimeout(0.01)
        sock.sendall(head)
        opened.append(sock)
    started = time.monotonic()
    closed: list[float | None] = [None] * sockets
    position = 0
    while time.monotonic() - started < seconds and None in closed:
        for n, sock in enumerate(opened):
            if closed[n] is not None:
                continue
            try:
                if sock.recv(65536) == b"":
                    closed[n] = time.monotonic() - started
                    continue
                closed[n] = time.monotonic() - started  # an answer (408): the request is over
                continue
            except (TimeoutError, BlockingIOError):
                pass
            except ConnectionResetError:
                closed[n] = time.monotonic() - started
                continue
            try:
                sock.sendall(then[position % len(then):position % len(then) + 1])
            except (BrokenPipeError, ConnectionResetError):
                closed[n] = time.monotonic() - started
        position += 1
        time.sleep(0.5)
    for sock in opened:
        sock.close()
    return closed


def test_slow_headers_and_slow_bodies_are_cut_off(edge, keys):
    # the request line and headers a byte at a time: the header timeout (2 s here) ends them
    slow_headers = _trickle(edge.port, b"", b"POST /v1/imports HTTP/1.1\r\nHost: somewhere.example\r\n" * 10,
                            sockets=4, seconds=8)
    assert all(t is not None and t < 5 for t in slow_headers), slow_headers
    # the headers at once, the body a byte at a time: the body timeout (2 s here) ends it
    for path, kind in (("/v1/imports", "text/csv"), ("/v1/batch", "application/json")):
        auth = f"Bearer {keys['import']}"
        head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: {kind}\r\n"
                "Content-Length: 100000\r\n\r\n").encode()
        slow_body = _trickle(edge.port, head, b"email,event_name\n", sockets=2, seconds=8)
        assert all(t is not None and t < 5 for t in slow_body), (path, slow_body)
    # a body that comes at once is not hurried
    with edge.client(keys["import"]) as client:
        assert client.post("/v1/imports", content=EVENTS.encode(), headers={"Content-Type": "text/csv"}).status_code == 202


class _Files(test_http._Files):
    """test_http's files, and two more: one that sends its headers a line a second, one behind a
    password (Basic auth)."""

    def do_GET(self):
        try:
            if self.path.startswith("/slow-headers.csv"):
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                for n in range(20):
                    self.wfile.write(b"X-Slow-%d: still coming\r\n" % n)
                    self.wfile.flush()
                    time.sleep(1)
                self.wfile.write(b"\r\n" + EVENTS.encode())
            elif self.path.startswith("/short.csv"):  # announces more than it sends, then closes
                self.send_response(200)
                self.send_header("Content-Length", str(len(EVENTS) * 2))
                self.end_headers()
                self.wfile.write(EVENTS.encode())
                self.close_connection = True
            elif self.path.startswith("/private.csv") and self.headers.get("Authorization") != \
                    "Basic " + base64.b64encode(b"reader:s3cret@pw").decode():
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                super().do_GET()
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture(scope="module")
def files():
    server = http.server.ThreadingHTTPServer(("127.0.0.2", free_port()), _Files)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_a_download_s_time_limit_covers_its_headers(edge, keys, files):
    with edge.client(keys["import"]) as client:
        started = time.monotonic()
        answer = client.post("/v1/imports", json={"data_file_url": f"http://127.0.0.2:{files}/slow-headers.csv"})
        state = wait_final(client, answer.json()["import_id"])
        assert (state["status"], state["failure_code"]) == ("failed", "url_timeout"), state
        assert time.monotonic() - started < 6  # the limit is 2 s; the server would take 20


def test_a_download_cut_short_is_not_imported_in_part(edge, keys, files):
    with edge.client(keys["import"]) as client:
        answer = client.post("/v1/imports", json={"data_file_url": f"http://127.0.0.2:{files}/short.csv",
                                                  "create_people": True})
        state = wait_final(client, answer.json()["import_id"])
        assert (state["status"], state["failure_code"], state["imported"]) == ("failed", "url_unreachable", 0), state
        assert "short of its Content-Length" in state["failure"]


# -- 6. options that crashed later ------------------------------------------------------------------------

SEGMENT = b'{"type": "track", "userId": "u1", "event": "Signed up", "timestamp": "2024-01-01T00:00:00Z"}\n'


def test_options_that_would_fail_later_are_refused_before_the_202(edge, keys, store, backfill, tmp_path):
    recorded = imports_recorded(store)
    with edge.client(keys["import"]) as client:
        upload = {"file": ("e.csv", EVENTS.encode())}
        for data, needle in (({"date_formats": "%Y%Y"}, "repeats %Y"),
                             ({"date_formats": "%d/%m %d"}, "repeats %d"),
                             ({"date_formats": "%x %d"}, "date_formats '%x %d'"),
                             *(({"encoding": name}, "not a text encoding") for name in
                               ("rot13", "base64", "hex", "zlib_codec", "uu", "idna", "punycode", "undefined",
                                "cp037", "utf-7")),
                             ({"encoding": "utf-16"}, "UTF-16 or UTF-32"), ({"encoding": "utf_32_le"}, "UTF-16 or UTF-32")):
            answer = client.post("/v1/imports", files=upload, data=data)
            assert answer.status_code == 422, (data, answer.text)
            assert answer.json()["error"]["code"] == "invalid_option" and needle in answer.json()["error"]["message"], \
                (data, answer.text)
        dry_run, people = "dry_run does not read Segment files", "holds people and events together: leave out type"
        for segment, needle in (({"files": {"file": ("e.ndjson", SEGMENT)}, "data": {"dry_run": "true"}}, dry_run),
                                ({"content": SEGMENT, "params": {"dry_run": "true"},
                                  "headers": {"Content-Type": "text/csv"}}, dry_run),
                                ({"json": {"data_file_url": "http://127.0.0.2:1/export.ndjson", "dry_run": True}},
                                 dry_run),
                                ({"files": {"file": ("e.json", SEGMENT)}, "data": {"type": "people"}}, people)):
            answer = client.post("/v1/imports", **segment)
            assert answer.status_code == 422, answer.text
            assert needle in answer.json()["error"]["message"], answer.text
    assert imports_recorded(store) == recorded and not uploads(edge)

    path = write(tmp_path, "e.csv", EVENTS)
    segment_file = tmp_path / "e.ndjson"
    segment_file.write_bytes(SEGMENT)
    for args in (("--date-format", "%Y%Y"), ("--encoding", "rot13"), ("--encoding", "utf-16"),
                 ("--encoding", "idna")):
        done = backfill("import", str(path), *args)
        lines = done.stderr.decode().strip().splitlines()
        assert done.returncode == 2 and "Traceback" not in done.stderr.decode(), (args, done.stderr)
        assert lines[-1].startswith("Error: ") and len([line for line in lines if line.startswith("Error")]) == 1
    refused = backfill("import", str(segment_file), "--dry-run")
    assert refused.returncode == 2 and "--dry-run does not read Segment files" in refused.stderr.decode()
    assert imports_recorded(store) == recorded


# -- 7. secrets in URLs -------------------------------------------------------------------------------------

SECRETS = ("s3cret", "SIGSECRET", "AMZSECRET", "TOKSECRET")


def test_a_url_s_password_is_sent_and_its_secrets_are_not_kept(edge, keys, files, backfill):
    url = (f"http://reader:s3cret%40pw@127.0.0.2:{files}/private.csv?day=2024-01-01&sig=SIGSECRET"
           "&X-Amz-Signature=AMZSECRET&token=TOKSECRET")
    with edge.client(keys["import"]) as client:
        answer = client.post("/v1/imports", json={"data_file_url": url, "create_people": True})
        assert answer.status_code == 202, answer.text
        import_id = answer.json()["import_id"]
        state = wait_final(client, import_id)
        assert (state["status"], state["imported"]) == ("completed_with_errors", 1), state  # the password was sent
        assert state["source"].startswith(f"http://127.0.0.2:{files}/private.csv?day=2024-01-01&sig=")
        shown = [client.get(f"/v1/imports/{import_id}").text, client.get("/v1/imports").text,
                 client.get(f"/v1/imports/{import_id}/report").text]
    shown += [backfill("status").stdout.decode(), backfill("status", import_id, "--json").stdout.decode(),
              (edge.home / "serve.log").read_text()]
    for text in shown:
        assert not any(secret in text for secret in SECRETS), text[-2000:]


# -- 8. IPv4 addresses inside IPv6 --------------------------------------------------------------------------

def test_6to4_and_teredo_addresses_are_checked_as_the_ipv4_they_carry(edge, keys, files):
    with edge.client(keys["import"]) as client:
        for host, carried in (("2002:7f00:1::", "127.0.0.1"),                         # 6to4
                              ("2001:0:4136:e378:8000:63bf:80ff:fffe", "127.0.0.1"),  # Teredo (client, obfuscated)
                              ("64:ff9b::a9fe:a9fe", "169.254.169.254")):             # NAT64
            answer = client.post("/v1/imports", json={"data_file_url": f"http://[{host}]:{files}/events.csv"})
            state = wait_final(client, answer.json()["import_id"])
            assert (state["status"], state["failure_code"]) == ("failed", "url_forbidden"), (host, state)
            assert carried in state["failure"], state["failure"]


# -- 9. the allowlist's spelling ---------------------------------------------------------------------------

def test_the_fetch_allowlist_takes_spaces_and_refuses_nonsense_at_start(redis_url, workers, keys, files, tmp_path):
    (tmp_path / "spaced").mkdir()
    spaced = Service(tmp_path / "spaced", BACKFILL_API_FETCH_ALLOW="localhost  127.0.0.2, 10.0.0.0/8")
    try:
        with spaced.client(keys["import"]) as client:
            answer = client.post("/v1/imports", json={"data_file_url": f"http://127.0.0.2:{files}/events.csv",
                                                      "create_people": True})
            state = wait_final(client, answer.json()["import_id"])
            assert (state["status"], state["imported"]) == ("completed_with_errors", 1), state
    finally:
        spaced.stop()
    exe = shutil.which("backfill", path=str(Path(sys.executable).parent)) or "backfill"
    for wrong in ("127.0.0.2;localhost", "http://files.internal/", "*.example.com"):
        started = subprocess.run([exe, "serve", "--port", str(free_port())], capture_output=True, timeout=30, cwd=ROOT, check=False,
                                 env={**os.environ, "BACKFILL_HOME": str(tmp_path), "BACKFILL_API_FETCH_ALLOW": wrong})
        assert started.returncode == 1, (wrong, started.stderr)
        assert "BACKFILL_API_FETCH_ALLOW" in started.stderr.decode() and "Traceback" not in started.stderr.decode()


# -- 10. the tracking endpoints' 503s -----------------------------------------------------------------------

def test_tracking_503s_carry_segment_s_code_and_message(redis_url, workers, tmp_path):
    down = Service(tmp_path, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    try:
        with httpx.Client(base_url=down.url, auth=("bfk_00000000_whatever", ""), timeout=30) as client:
            for answer in (client.post("/v1/batch", json={"batch": []}), client.post("/v1/track", json={}),
                           client.put("/api/v1/customers/u1", json={"email": "a@example.com"})):
                body = answer.json()
                assert answer.status_code == 503 and answer.headers["retry-after"], answer.text
                assert body["code"] == "unavailable" and "Redis" in body["message"], body
                assert body["error"]["code"] == "unavailable"
    finally:
        down.stop()


# -- 11. ids, calls, names, URLs ----------------------------------------------------------------------------

def test_ids_with_a_slash_calls_and_names_at_the_edge(edge, keys, store, files):
    with edge.client(keys["import"]) as client:
        people = client.post("/v1/imports", files={"file": ("p.csv", b"id,email\nteam/alice,alice@example.com\n")},
                             data={"type": "people"})
        assert wait_final(client, people.json()["import_id"])["imported"] == 1
        for path in ("/v1/people/team%2Falice", "/v1/people/team/alice"):
            found = client.get(path, params={"by": "id"})
            assert found.status_code == 200 and found.json()["id"] == "team/alice", (path, found.text)

        # RFC 5987: filename* (UTF-8, percent-encoded) is the name, over the plain filename
        body = ("--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"fallback.csv\"; "
                "filename*=UTF-8''na%C3%AFve%20list.csv\r\n\r\n" + EVENTS + "\r\n--b0undary--\r\n").encode()
        named = client.post("/v1/imports", content=body, headers={"Content-Type": "multipart/form-data; boundary=b0undary"})
        assert wait_final(client, named.json()["import_id"])["source"] == "naïve list.csv"

        spaced = client.post("/v1/imports", json={"data_file_url": f"http://127.0.0.2:{files}/a b.csv"})
        assert spaced.status_code == 422 and spaced.json()["error"]["code"] == "url_invalid", spaced.text

    document = httpx.get(edge.url + "/openapi.json").json()
    for call in ("track", "identify", "page", "screen", "group", "alias"):
        assert "call" not in {p["name"] for p in document["paths"][f"/v1/{call}"]["post"].get("parameters", [])}
    record, key = store.apikeys.create("edge", "track")
    with httpx.Client(base_url=edge.url, auth=(key, ""), timeout=30) as tracker:
        # ?call= does not turn a track call into an alias
        sent = tracker.post("/v1/track", params={"call": "alias"}, json={"userId": "u1", "event": "Clicked"})
        assert sent.status_code == 200, sent.text
        for blank in ("%20%20", "%09"):
            refused = tracker.put(f"/api/v1/customers/{blank}", json={"email": "blank@example.com"})
            assert refused.status_code == 400 and refused.json()["code"] == "missing_user_id", refused.text
            event = tracker.post(f"/api/v1/customers/{blank}/events", json={"name": "x", "anonymous_id": "a1"})
            assert event.status_code == 400 and event.json()["code"] == "missing_user_id", event.text
        slashed = tracker.put("/api/v1/customers/team%2Fbob", json={"email": "bob@example.com"})
        assert slashed.status_code == 200, slashed.text
    reports = stream_reports(store, record.id)
    assert (sum(r["imported"] for r in reports), sum(r["errors"] for r in reports)) == (2, 0), reports
    assert store.people.find("team/bob", "id")["email"] == "bob@example.com"


# -- 1 (a). control characters in names and options ------------------------------------------------------

def test_control_characters_in_names_and_options_are_refused_at_the_edge(edge, keys, store, backfill, tmp_path):
    recorded = imports_recorded(store)
    with edge.client(keys["import"]) as client:
        raw = {"content": EVENTS.encode(), "headers": {"Content-Type": "text/csv"}}
        for params in ({"source": "evil\x00.csv"}, {"source": "two\nlines.csv"}, {"source": "esc\x1b[31m.csv"},
                       {"skip": "a\x00"}, {"map": "Mail=em\x07ail"}, {"date_formats": "%Y-%m-%d\x00"},
                       {"delimiter": "\x00"}, {"trigger_window": "72h\x00"}):
            answer = client.post("/v1/imports", params=params, **raw)
            assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_option", (params, answer.text)
            assert "control character" in answer.json()["error"]["message"] or params.get("trigger_window"), answer.text
        for data in ({"mapping": orjson.dumps({"Mail\x00": "email"}).decode()}, {"skip": "b\x7f"},
                     {"timezone": "UTC\x00"}):
            answer = client.post("/v1/imports", files={"file": ("e.csv", EVENTS.encode())}, data=data)
            assert answer.status_code == 422, (data, answer.text)
        for name in (b"evil\x00.csv", b"bell\x07.csv", "\u009bcsi.csv".encode()):
            body = (b"--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + name + b"\"\r\n\r\n"
                    + EVENTS.encode() + b"\r\n--b0undary--\r\n")
            answer = client.post("/v1/imports", content=body,
                                 headers={"Content-Type": "multipart/form-data; boundary=b0undary"})
            assert answer.status_code == 422 and "control character" in answer.json()["error"]["message"], answer.text
        for job in ({"data_file_url": "http://127.0.0.2:1/e\x00.csv"},
                    {"data_file_url": "http://127.0.0.2:1/e.csv", "mapping": {"Mail": "e\u0000mail"}},
                    {"data_file_url": "http://127.0.0.2:1/e.csv", "skip": ["\u001b"]}):
            answer = client.post("/v1/imports", json=job)
            assert answer.status_code == 422, (job, answer.text)
    assert imports_recorded(store) == recorded and not uploads(edge)

    odd = write(tmp_path, "ev\x01il.csv", EVENTS)
    plain = write(tmp_path, "e.csv", EVENTS)
    for args in (("import", str(odd)), ("import", str(plain), "--map", "Mail=em\x07ail"),
                 ("import", str(plain), "--skip", "a\x1b"), ("keys", "create", "--name", "bad\x1bname"),
                 ("campaigns", "add", "wel\ncome", "--event", "Signed up"),
                 ("campaigns", "add", "welcome", "--event", "Signed\x7fup")):
        done = backfill(*args)
        assert done.returncode == 2 and "control character" in done.stderr.decode(), (args, done.stderr)
        assert "Traceback" not in done.stderr.decode()
    assert imports_recorded(store) == recorded
    assert not store.triggers.campaigns()
    assert "bad" not in backfill("keys", "list").stdout.decode()
