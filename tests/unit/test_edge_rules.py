"""The HTTP service's and the CLI's edge, its pure rules: IPv4 inside IPv6, the allowlist's spelling,
URLs without their secrets, import options that would fail later, names with control characters."""
from __future__ import annotations

import asyncio
import ipaddress

import pytest

from producers.options import check_encoding, check_options, delimiter_of
from producers.text import problem_in
from producers.web.fetch import (
    _basic_auth,
    carried,
    check_url,
    forbidden,
    parse_allow,
    redact,
)
from producers.web.limits import BodyDeadline, SlowRequest
from producers.web.tracking import speaks_segment
from producers.web.uploads import extended_filename
from worker.errors import ConfigError, FileProblem
from worker.timestamps import check_formats


@pytest.mark.parametrize("address, why", [
    ("2002:7f00:1::", "loopback, carrying 127.0.0.1"),                        # 6to4
    ("2002:a9fe:a9fe::1", "link-local, carrying 169.254.169.254"),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback, carrying 127.0.0.1"),  # Teredo: the client, obfuscated
    ("64:ff9b::a9fe:a9fe", "link-local, carrying 169.254.169.254"),           # NAT64
    ("64:ff9b:1::a00:1", "private, carrying 10.0.0.1"),
    ("::7f00:1", "loopback, carrying 127.0.0.1"),                             # IPv4-compatible
    ("::ffff:127.0.0.1", "loopback"),                                         # mapped: the IPv4 address itself
])
def test_ipv6_addresses_are_judged_by_the_ipv4_they_carry(address, why):
    assert forbidden(ipaddress.ip_address(address)) == why


def test_what_an_ipv6_address_carries():
    assert carried(ipaddress.ip_address("2002:808:808::1")) == [ipaddress.ip_address("8.8.8.8")]
    assert carried(ipaddress.ip_address("2606:4700::1111")) == []
    assert carried(ipaddress.ip_address("::1")) == [] and carried(ipaddress.ip_address("8.8.8.8")) == []
    assert forbidden(ipaddress.ip_address("2002:808:808::1")) is None  # 6to4 of a public address


def test_the_allowlist_takes_spaces_and_commas_and_refuses_anything_else():
    names, networks = parse_allow("127.0.0.1 localhost\tfiles.internal,10.0.0.0/8 ,, ")
    assert names == {"localhost", "files.internal"} and [str(n) for n in networks] == ["127.0.0.1/32", "10.0.0.0/8"]
    for wrong in ("127.0.0.1;localhost", "http://files.internal", "*.example.com", "files.internal:8080",
                  "10.0.0.0/33", "-bad.example"):
        with pytest.raises(ConfigError, match="BACKFILL_API_FETCH_ALLOW"):
            parse_allow(wrong)


def test_a_url_is_stored_without_its_secrets():
    url = "https://me:pa%40ss@files.example.com:8443/x/orders.csv?day=1&X-Amz-Signature=abc&sig=d&Token=e&flag#part"
    assert redact(url) == ("https://files.example.com:8443/x/orders.csv?day=1&X-Amz-Signature=REDACTED&sig=REDACTED"
                           "&Token=REDACTED&flag")
    assert redact("http://example.com/a.csv") == "http://example.com/a.csv"
    assert _basic_auth(check_url(url)) == {"Authorization": "Basic bWU6cGFAc3M="}  # me:pa@ss
    assert _basic_auth(check_url("http://example.com/a.csv")) == {}


@pytest.mark.parametrize("url", ["http://example.com/a b.csv", "http://example.com/a\x00.csv", "http://example.com/\n",
                                 " http://example.com/a.csv"])
def test_a_url_with_a_space_or_a_control_character_is_refused(url):
    with pytest.raises(FileProblem) as refused:
        check_url(url)
    assert refused.value.code == "url_invalid" and "percent-encode" in str(refused.value)


@pytest.mark.parametrize("name", ["rot13", "base64", "hex", "zlib_codec", "uu", "idna", "punycode", "undefined",
                                  "utf-7", "cp037", "unicode_escape", "iso2022_jp", "utf-16", "utf_16_le", "utf-32"])
def test_encodings_a_csv_file_cannot_be_read_in_are_refused(name):
    with pytest.raises(ConfigError, match="not a text encoding|UTF-16 or UTF-32"):
        check_encoding(name)


@pytest.mark.parametrize("name", ["utf-8", "UTF8", "utf-8-sig", "cp1252", "latin-1", "shift_jis", "gb18030", "koi8_r"])
def test_text_encodings_that_read_ascii_as_ascii_are_taken(name):
    check_encoding(name)


@pytest.mark.parametrize("pattern, says", [("%Y%Y", "repeats %Y"), ("%d/%m/%d", "repeats %d"),
                                           ("%x %d", "reads a field twice"), ("%c %H", "reads a field twice")])
def test_date_formats_that_read_a_field_twice_are_refused(pattern, says):
    with pytest.raises(ValueError, match=says):
        check_formats([pattern])
    with pytest.raises(ConfigError, match=says):
        check_options(date_formats=[pattern])


def test_literal_percent_signs_are_no_repeat():
    assert check_formats(["%%Y %Y %%"]) == ("%%Y %Y %%",)


@pytest.mark.parametrize("options, named", [
    ({"source": "evil\x00.csv"}, "file name"), ({"mapping": {"Mail\x1b": "email"}}, "--map"),
    ({"mapping": {"Mail": "e\nmail"}}, "--map"), ({"skip": ["a\x7f"]}, "--skip"),
    ({"date_formats": ["%Y\x00"]}, "--date-format"), ({"timezone": "UTC\x00"}, "--timezone"),
    ({"trigger_window": "72h\x00"}, "--trigger-window"), ({"delimiter": "\x00"}, "--delimiter"),
    ({"source": "caf\udce9.csv"}, "file name"),  # a name that is not UTF-8, as the command line gives it
    ({"source": "\u0085.csv"}, "file name"),     # C1
])
def test_names_and_options_with_control_characters_are_refused(options, named):
    with pytest.raises(ConfigError) as refused:
        check_options(**options)
    assert str(refused.value).startswith(named) and "control characters" in str(refused.value)


def test_tab_is_a_delimiter_and_text_without_control_characters_passes():
    assert delimiter_of("\t") == "\t" and delimiter_of("tab") == "\t"
    assert problem_in("naïve list – 2024.csv") is None
    assert problem_in("a\tb") == "control character (U+0009) at position 2"


@pytest.mark.parametrize("disposition, name", [
    (b"form-data; name=\"file\"; filename=\"x.csv\"; filename*=UTF-8''na%C3%AFve%20list.csv", "naïve list.csv"),
    (b"form-data; name=\"file\"; filename*=utf-8''%E2%82%AC.csv", "€.csv"),
    (b"form-data; name=\"file\"; filename*=ISO-8859-1'en'caf%E9.csv", "café.csv"),
    (b"form-data; name=\"file\"; filename=\"x.csv\"", None),
    (b"form-data; name=\"file\"; filename*=UTF-8''%FF.csv", None),       # not UTF-8: the plain name is used
    (b"form-data; name=\"file\"; filename*=koi8-r''%C1.csv", None),      # a charset RFC 5987 does not take
])
def test_rfc_5987_file_names(disposition, name):
    assert extended_filename(disposition) == name


def test_the_tracking_paths_answer_in_segment_s_shape():
    assert all(speaks_segment(p) for p in ("/v1/batch", "/v1/track", "/v1/alias", "/api/v1/customers/x/events"))
    assert not any(speaks_segment(p) for p in ("/v1/imports", "/v1/people/x", "/v1/tracks", "/healthz"))


def test_a_body_that_stalls_is_cut_off():
    async def run(pauses: list[float]) -> list[bytes]:
        async def receive():
            await asyncio.sleep(pauses.pop(0))
            return {"type": "http.request", "body": b"x" * 10, "more_body": bool(pauses)}

        got: list[bytes] = []

        async def app(scope, receive, send):
            while True:
                message = await receive()
                got.append(message["body"])
                if not message["more_body"]:
                    return

        await BodyDeadline(app, 0.2)({"type": "http"}, receive, None)
        return got

    assert asyncio.run(run([0.0, 0.1, 0.1])) == [b"x" * 10] * 3
    with pytest.raises(SlowRequest) as slow:
        asyncio.run(run([0.0, 0.5]))
    assert slow.value.status == 408 and slow.value.headers == {"Connection": "close"}
    with pytest.raises(SlowRequest):  # each pause within the limit, but 10 bytes in 0.3 s is under 1 KB a second
        asyncio.run(run([0.0, 0.15, 0.15, 0.15]))
