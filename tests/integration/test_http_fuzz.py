"""The HTTP service fuzzed from its own OpenAPI document (schemathesis): no input gets a 500."""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from .test_http import Service

#: Requests generated for each operation (each endpoint and method).
EXAMPLES = 30


@pytest.fixture(scope="module")
def fuzzed(redis_url, workers, tmp_path_factory):
    running = Service(tmp_path_factory.mktemp("fuzz"), BACKFILL_API_MAX_UPLOAD_BYTES="200000")
    yield running
    running.stop()


def test_no_request_makes_the_service_fail(fuzzed, store):
    _, key = store.apikeys.create("fuzz", "import")
    schema = schemathesis.openapi.from_url(fuzzed.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    covered = {(o.method.upper(), o.path) for o in operations}
    assert {("POST", "/v1/uploads"), ("GET", "/v1/uploads/{upload_id}"), ("DELETE", "/v1/uploads/{upload_id}"),
            ("POST", "/v1/uploads/{upload_id}/inspect")} <= covered
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case):
            case.call_and_validate(base_url=fuzzed.url, headers={"Authorization": f"Bearer {key}"},
                                   checks=[not_a_server_error])

        call()


def test_no_options_make_an_inspection_fail(fuzzed, store):
    """The inspection's options fuzzed against a file that is there (a made-up id only meets the 404)."""
    import httpx

    _, key = store.apikeys.create("fuzz", "import")
    headers = {"Authorization": f"Bearer {key}"}
    staged = httpx.post(fuzzed.url + "/v1/uploads?name=e.csv", headers={**headers, "Content-Type": "text/csv"},
                        content=b"email,event_name,time,plan\nann@example.com,Signed up,2024-01-01,pro\n")
    assert staged.status_code == 201, staged.text
    schema = schemathesis.openapi.from_url(fuzzed.url + "/openapi.json")
    operation = schema["/v1/uploads/{upload_id}/inspect"]["POST"]

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES * 3, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def call(case):
        case.path_parameters = {"upload_id": staged.json()["upload_id"]}
        case.call_and_validate(base_url=fuzzed.url, headers=headers, checks=[not_a_server_error])

    call()
