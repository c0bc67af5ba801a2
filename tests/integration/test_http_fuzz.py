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
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case):
            case.call_and_validate(base_url=fuzzed.url, headers={"Authorization": f"Bearer {key}"},
                                   checks=[not_a_server_error])

        call()
