"""The chunk-time histogram: which bucket a time lands in, and the cumulative form Prometheus reads."""
from worker.ops.metrics import _histogram
from worker.store.metrics import CHUNK_BUCKETS, bucket_of


def test_a_time_lands_in_the_smallest_bound_it_does_not_exceed():
    assert bucket_of(0.004) == "0.01" and bucket_of(0.01) == "0.01" and bucket_of(0.0101) == "0.025"
    assert bucket_of(299.0) == "300.0" and bucket_of(301.0) == "+Inf"


def test_buckets_are_cumulative_and_end_with_inf():
    fields: dict[str, str] = {}
    for seconds in (0.02, 0.02, 0.3, 4.0, 1000.0):
        key = bucket_of(seconds)
        fields[key] = str(int(fields.get(key, "0")) + 1)
    fields["sum"] = "1004.34"
    family = _histogram(fields)
    samples = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    assert samples[("backfill_chunk_duration_seconds_bucket", "0.01")] == 0
    assert samples[("backfill_chunk_duration_seconds_bucket", "0.025")] == 2
    assert samples[("backfill_chunk_duration_seconds_bucket", "0.5")] == 3
    assert samples[("backfill_chunk_duration_seconds_bucket", "5.0")] == 4
    assert samples[("backfill_chunk_duration_seconds_bucket", repr(CHUNK_BUCKETS[-1]))] == 4
    assert samples[("backfill_chunk_duration_seconds_bucket", "+Inf")] == 5
    assert samples[("backfill_chunk_duration_seconds_count", None)] == 5
    assert samples[("backfill_chunk_duration_seconds_sum", None)] == 1004.34
