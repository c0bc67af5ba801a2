"""The web console's sign-in rules, over real sockets against `backfill serve` (no browser needed): the
cookie's flags, the CSRF token and the same-origin rule on every change, a read key that changes
nothing, a revoked key's sign-in ending at its next request, signing out."""
from __future__ import annotations

import re
import ssl
import time

import httpx
import pytest

from worker import keys as redis_keys

from .test_http import Service


@pytest.fixture(scope="module")
def console(redis_url, tmp_path_factory):
    running = Service(tmp_path_factory.mktemp("console-auth"))
    yield running
    running.stop()


def sign_in(service: Service, key: str, **options) -> tuple[httpx.Client, str, httpx.Response]:
    """A browser-like client signed in with ``key``: the client (holding the cookie), the sign-in's CSRF
    token (read from a page, as the page's script reads it) and the sign-in's answer."""
    client = httpx.Client(base_url=service.url, timeout=30, **options)
    answer = client.post("/signin", data={"key": key}, headers={"Origin": service.url})
    assert answer.status_code == 303, answer.text
    page = client.get("/")
    assert page.status_code == 200
    assert key not in page.text  # the key is sent once, never written into a page
    return client, re.search(r'name="csrf-token" content="([^"]+)"', page.text)[1], answer


def test_the_cookie_carries_a_token_only_httponly_and_samesite_strict(console, store):
    _, key = store.apikeys.create("browser", "import")
    client, _, answer = sign_in(console, key)
    cookie = answer.headers["set-cookie"]
    name, token = cookie.split(";")[0].split("=", 1)
    assert name == "backfill_console" and token not in key and len(token) >= 43  # 256 bits, url-safe base64
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= flags and "secure" not in flags  # plain http here
    assert answer.headers["location"] == "/"
    # Redis keeps the token's digest only, with the sign-in's lifetime
    names = [k.decode() for k in store.r.scan_iter(redis_keys.CONSOLE_SESSION_PREFIX + "*")]
    assert len(names) == 1 and token not in names[0]
    assert 0 < store.r.ttl(names[0]) <= 8 * 3600
    assert client.get("/v1/imports").status_code == 200  # the API takes the cookie for reads
    headers = client.get("/").headers
    assert "script-src 'self'" in headers["content-security-policy"] and "frame-ancestors 'none'" in \
        headers["content-security-policy"] and headers["x-frame-options"] == "DENY"
    assert headers["cache-control"] == "no-store"


def test_sign_in_is_refused_for_a_wrong_key_or_from_another_site(console, store):
    _, key = store.apikeys.create("browser", "import")
    with httpx.Client(base_url=console.url) as client:
        wrong = client.post("/signin", data={"key": key[:-2] + "xx"}, headers={"Origin": console.url})
        assert wrong.status_code == 401 and "set-cookie" not in wrong.headers and "Unknown API key" in wrong.text
        elsewhere = client.post("/signin", data={"key": key}, headers={"Origin": "http://evil.example"})
        assert elsewhere.status_code == 403 and "set-cookie" not in elsewhere.headers
        assert client.get("/", follow_redirects=False).headers["location"] == "/signin"
        assert client.get("/v1/imports").status_code == 401


def test_changes_through_the_cookie_need_the_csrf_token_and_this_origin(console, store):
    _, key = store.apikeys.create("browser", "import")
    client, csrf, _ = sign_in(console, key)
    url = "/v1/imports/nope/cancel"
    missing = client.post(url, headers={"Origin": console.url})
    assert missing.status_code == 403 and missing.json()["error"]["code"] == "csrf"
    forged = csrf[:-1] + ("B" if csrf.endswith("A") else "A")  # (a token's last character is "A" one time in 16)
    wrong = client.post(url, headers={"Origin": console.url, "X-CSRF-Token": forged})
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "csrf"
    other_site = client.post(url, headers={"Origin": "http://evil.example", "X-CSRF-Token": csrf})
    assert other_site.status_code == 403 and other_site.json()["error"]["code"] == "csrf"
    no_origin = client.post(url, headers={"X-CSRF-Token": csrf})
    assert no_origin.status_code == 403
    # the token and the origin (or a same-site Referer): the API's own answer (no such import)
    assert client.post(url, headers={"Origin": console.url, "X-CSRF-Token": csrf}).status_code == 404
    assert client.post(url, headers={"Referer": console.url + "/imports/x", "X-CSRF-Token": csrf}).status_code == 404
    # a Bearer key works as before, no CSRF token (a script, not a browser)
    with console.client(key) as script:
        assert script.post(url).status_code == 404


def test_a_read_key_sees_everything_and_changes_nothing(console, store):
    _, key = store.apikeys.create("viewer", "read")
    client, csrf, _ = sign_in(console, key)
    page = client.get("/").text
    assert 'href="/new"' not in page and "(read," in page
    assert client.get("/new").status_code == 403
    refused = client.post("/v1/imports", files={"file": ("e.csv", b"email,event_name\na@example.com,x\n")},
                          headers={"Origin": console.url, "X-CSRF-Token": csrf})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert client.get("/v1/imports").status_code == 200


def test_a_revoked_key_ends_its_sign_ins_at_the_next_request(console, store):
    record, key = store.apikeys.create("leaver", "import")
    client, _, _ = sign_in(console, key)
    assert client.get("/v1/imports").status_code == 200
    assert store.apikeys.revoke(record.id)
    ended = client.get("/v1/imports")
    assert ended.status_code == 401 and "sign in again" in ended.json()["error"]["message"]
    assert client.get("/", follow_redirects=False).headers["location"] == "/signin"
    assert list(store.r.scan_iter(redis_keys.CONSOLE_SESSION_PREFIX + "*")) == []


def test_sign_out_needs_its_token_and_ends_the_sign_in(console, store):
    _, key = store.apikeys.create("browser", "import")
    client, csrf, _ = sign_in(console, key)
    cookie = client.cookies["backfill_console"]
    refused = client.post("/signout", data={"csrf_token": "wrong"}, headers={"Origin": console.url})
    assert refused.status_code == 403 and client.get("/v1/imports").status_code == 200
    out = client.post("/signout", data={"csrf_token": csrf}, headers={"Origin": console.url})
    assert out.status_code == 303 and out.headers["location"] == "/signin"
    assert 'backfill_console=""' in out.headers["set-cookie"] or "Max-Age=0" in out.headers["set-cookie"]
    with httpx.Client(base_url=console.url, cookies={"backfill_console": cookie}) as replay:
        assert replay.get("/v1/imports").status_code == 401  # the old token is gone server-side too


def test_over_tls_the_cookie_is_secure(redis_url, store, tmp_path):
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    verify = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    running = Service(tmp_path, "--certfile", str(tmp_path / "cert.pem"), "--keyfile", str(tmp_path / "key.pem"),
                      verify=verify)
    try:
        _, key = store.apikeys.create("browser", "import")
        client, _, answer = sign_in(running, key, verify=verify)
        client.close()  # (an open keep-alive connection would hold the server's graceful stop)
        assert "secure" in {part.strip().lower() for part in answer.headers["set-cookie"].split(";")}
    finally:
        running.stop()


def test_console_pages_are_not_in_the_openapi_document(console):
    paths = httpx.get(console.url + "/openapi.json").json()["paths"]
    assert not [p for p in paths if not p.startswith(("/v1/", "/api/", "/healthz", "/readyz"))]


def test_every_page_answers_head_as_its_get_and_names_an_icon_it_serves(console, store):
    """A monitor or a link checker asks HEAD; a browser asks /favicon.ico unless the page names an icon
    (a 404 there is an error in the browser's console on every page)."""
    _, key = store.apikeys.create("browser", "import")
    client, _, _ = sign_in(console, key)
    import_id = "nosuch"
    for path in ("/", "/new", "/signin", f"/imports/{import_id}", f"/imports/{import_id}/errors"):
        for who in (client, httpx.Client(base_url=console.url)):
            got, head = who.get(path), who.head(path)
            assert (head.status_code, head.headers.get("location"), head.headers.get("content-type")) == \
                (got.status_code, got.headers.get("location"), got.headers.get("content-type")), path
            assert head.content == b""
    page = client.get("/").text
    icon = re.search(r'<link rel="icon" href="([^"]+)"', page)
    assert icon, "the page names no icon: the browser asks /favicon.ico"
    served = httpx.get(console.url + icon[1])
    assert served.status_code == 200 and served.headers["content-type"].startswith("image/")


def test_refused_sign_ins_from_one_address_are_bounded(redis_url, store, tmp_path):
    """A key guessed at the form's pace: past BACKFILL_CONSOLE_SIGNIN_FAILURES refusals in the window, even
    the right key waits (429, Retry-After) until the window ends; then it signs in."""
    counter = redis_keys.CONSOLE_SIGNIN_FAILURES_PREFIX + "127.0.0.1"
    running = Service(tmp_path, BACKFILL_CONSOLE_SIGNIN_FAILURES="5", BACKFILL_CONSOLE_SIGNIN_WINDOW_S="3")
    try:
        _, key = store.apikeys.create("browser", "import")
        with httpx.Client(base_url=running.url) as client:
            origin = {"Origin": running.url}
            codes = [client.post("/signin", data={"key": f"bfk_00000000_guess{n}"}, headers=origin).status_code
                     for n in range(8)]
            assert codes == [401] * 5 + [429] * 3
            held = client.post("/signin", data={"key": key}, headers=origin)
            assert held.status_code == 429 and "set-cookie" not in held.headers
            assert 1 <= int(held.headers["retry-after"]) <= 3 and "Too many refused sign-ins" in held.text
            time.sleep(int(held.headers["retry-after"]) + 0.5)
            assert client.post("/signin", data={"key": key}, headers=origin).status_code == 303
    finally:
        store.r.delete(counter)  # (the other tests sign in from this address too)
        running.stop()


def test_a_sign_in_form_too_large_or_of_another_kind_is_answered_with_a_page(console, store):
    """A sign-in body over the form's limit was a 500; one sent as JSON or multipart (curl -F) was told
    its key is unknown. Each is a page that says what is wrong, and the right key then signs in."""
    _, key = store.apikeys.create("browser", "import")
    with httpx.Client(base_url=console.url) as client:
        origin = {"Origin": console.url}
        large = client.post("/signin", data={"key": "x" * 20_000}, headers=origin)
        assert large.status_code == 413 and large.headers["content-type"].startswith("text/html")
        assert "at most 16,384 bytes" in large.text and "set-cookie" not in large.headers
        for other in ({"json": {"key": key}}, {"files": {"key": (None, key)}}):
            answer = client.post("/signin", headers=origin, **other)
            assert answer.status_code == 415 and "application/x-www-form-urlencoded" in answer.text
            assert "Unknown API key" not in answer.text and "set-cookie" not in answer.headers
        assert client.post("/signin", data={"key": key}, headers=origin).status_code == 303
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").text)[1]
        out = client.post("/signout", content=b"csrf_token=" + csrf.encode() + b"&x=" + b"y" * 20_000,
                          headers={**origin, "Content-Type": "application/x-www-form-urlencoded"})
        assert out.status_code == 403 and out.headers["content-type"].startswith("text/html")


def test_a_browser_outside_the_api_is_answered_with_pages_not_json(console):
    """A console address typed wrong (/imports with no id), or GET /signout, was the API's JSON in the
    browser; it is a page now, under the console's headers. The API keeps its JSON for everybody."""
    html = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    with httpx.Client(base_url=console.url, headers=html) as browser:
        for path, status in (("/imports", 404), ("/nope/<b>x</b>", 404), ("/signout", 405)):
            page = browser.get(path)
            assert page.status_code == status and page.headers["content-type"].startswith("text/html"), path
            assert "script-src 'self'" in page.headers["content-security-policy"] and "<b>x" not in page.text
            assert 'href="/"' in page.text
        assert browser.get("/v1/nope").headers["content-type"] == "application/json"
    assert httpx.get(console.url + "/imports").headers["content-type"] == "application/json"


def test_signing_in_again_ends_the_browsers_earlier_sign_in(console, store):
    """A second sign-in from the same browser (another key, or the same one again) replaces the first:
    the first token no longer opens anything, rather than living on for BACKFILL_CONSOLE_SESSION_S."""
    _, reader = store.apikeys.create("viewer", "read")
    _, writer = store.apikeys.create("browser", "import")
    client, _, _ = sign_in(console, reader)
    first = client.cookies["backfill_console"]
    again = client.post("/signin", data={"key": writer}, headers={"Origin": console.url})
    assert again.status_code == 303 and client.cookies["backfill_console"] != first
    assert "New import" in client.get("/").text
    with httpx.Client(base_url=console.url, cookies={"backfill_console": first}) as stolen:
        assert stolen.get("/v1/imports").status_code == 401
