"""The HTTP service's pure rules: which addresses a data_file_url may reach, URLs, form options."""
from __future__ import annotations

import ipaddress

import pytest

from producers.web.fetch import check_url, forbidden, parse_allow, resolve
from producers.web.models import ApiError, ImportOptions, form_options, summary
from worker.errors import FileProblem


@pytest.mark.parametrize("address, why", [
    ("127.0.0.1", "loopback"), ("127.9.9.9", "loopback"), ("::1", "loopback"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"), ("fd00::1", "private"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("224.0.0.1", "multicast"), ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("100.64.0.1", "not public"),                     # shared address space (carrier NAT)
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:169.254.169.254", "link-local"),  # IPv4 inside IPv6
])
def test_addresses_inside_the_network_are_refused(address, why):
    assert forbidden(ipaddress.ip_address(address)) == why


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address):
    assert forbidden(ipaddress.ip_address(address)) is None


def test_the_allowlist_takes_names_addresses_and_networks():
    names, networks = parse_allow(" files.internal , 10.0.0.0/8,127.0.0.2, Data.Example.com. ,")
    assert names == {"files.internal", "data.example.com"}
    assert ipaddress.ip_address("10.9.9.9") in networks[0] and ipaddress.ip_address("127.0.0.2") in networks[1]
    assert parse_allow("") == (frozenset(), ())


@pytest.mark.parametrize("url, code", [
    ("ftp://example.com/a.csv", "url_scheme"), ("file:///etc/passwd", "url_scheme"), ("example.com/a.csv", "url_scheme"),
    ("http:///a.csv", "url_invalid"), ("http://example.com:http/a.csv", "url_invalid"),
])
def test_only_http_urls_with_a_host(url, code):
    with pytest.raises(FileProblem) as refused:
        check_url(url)
    assert refused.value.code == code


def test_form_fields_become_import_options():
    options = form_options({"create_people": ["true"], "skip": ["a", "b"], "map": ["Mail=email", "What=event_name"],
                            "mapping": ['{"When": "time"}'], "timezone": ["UTC", "Europe/Paris"]})
    parsed = ImportOptions.model_validate(options)
    assert parsed.create_people is True and parsed.skip == ["a", "b"] and parsed.timezone == "Europe/Paris"
    assert parsed.mapping == {"When": "time", "Mail": "email", "What": "event_name"}
    args = parsed.producer_args()
    assert args["kind"] == "events" and "data_to_process" not in args and args["skip"] == ("a", "b")
    with pytest.raises(ApiError):
        form_options({"mapping": ["not json"]})
    with pytest.raises(ApiError):
        form_options({"map": ["no-equals-sign"]})


def test_an_import_summary_from_its_stored_state():
    found = summary("i1", {"status": "running", "source": "a.csv", "rows": "10", "rows_expected": "20",
                           "imported": "9", "errors": "1", "created_ms": "1700000000000", "spec": "{...}"})
    assert (found.status, found.rows, found.rows_expected, found.imported, found.errors, found.duplicates) == \
        ("running", 10, 20, 9, 1, 0)
    assert summary("i2", {}).status == "unknown"


def test_a_name_is_judged_by_every_address_it_resolves_to(monkeypatch):
    answers = {"intranet.example": ["10.1.2.3"], "mixed.example": ["93.184.215.14", "192.168.0.9"],
               "public.example": ["93.184.215.14", "2606:4700::1111"]}

    def getaddrinfo(host, port, type=0):  # noqa: A002 - socket.getaddrinfo's own name
        return [(2, 1, 6, "", (address, port)) for address in answers[host]]

    monkeypatch.setattr("socket.getaddrinfo", getaddrinfo)
    for host in ("intranet.example", "mixed.example"):  # one private answer is enough (a rebinding DNS mixes them)
        with pytest.raises(FileProblem) as refused:
            resolve(host, 80, parse_allow(""))
        assert refused.value.code == "url_forbidden" and "private" in str(refused.value)
    assert resolve("public.example", 443, parse_allow("")) == "93.184.215.14"
    assert resolve("intranet.example", 80, parse_allow("intranet.example")) == "10.1.2.3"  # named by the operator
    assert resolve("mixed.example", 80, parse_allow("192.168.0.0/16")) == "93.184.215.14"  # its network allowed
