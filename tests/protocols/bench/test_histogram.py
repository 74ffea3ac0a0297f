"""The latency histogram: bounded error, percentiles, merging, JSON round trip."""

from __future__ import annotations

import random

from protocols.bench import histogram
from protocols.bench.histogram import Histogram


def test_every_value_lands_in_a_bucket_within_one_sixty_fourth() -> None:
    rng = random.Random(7)
    values = list(range(5000)) + [rng.randrange(1, 1 << 41) for _ in range(20000)]
    for value in values:
        index = histogram.bucket_of(value)
        assert 0 <= index < histogram.SIZE
        assert abs(histogram.bucket_value(index) - value) <= max(1, value / 64)


def test_buckets_are_ordered_like_the_values() -> None:
    indexes = [histogram.bucket_of(v) for v in range(0, 1 << 16, 7)]
    assert indexes == sorted(indexes)


def test_huge_values_are_clamped_into_the_last_bucket() -> None:
    h = Histogram()
    h.record(1 << 60)
    assert h.counts[-1] == 1
    assert h.max == 1 << 60


def test_percentiles_min_max_and_mean() -> None:
    h = Histogram.of(range(1, 101))
    assert (h.count, h.min, h.max, h.mean) == (100, 1, 100, 50.5)
    assert h.percentile(50) == 50
    assert h.percentile(99) == 99
    assert h.percentile(0) == 1
    assert h.percentile(100) == 100


def test_percentiles_of_large_values_are_close() -> None:
    values = [1000 * i for i in range(1, 1001)]
    h = Histogram.of(values)
    for percent in (50, 90, 99, 99.9):
        exact = values[int(len(values) * percent / 100) - 1]
        assert abs(h.percentile(percent) - exact) <= exact / 64


def test_an_empty_histogram_reports_zeros() -> None:
    h = Histogram()
    assert (h.percentile(50), h.mean, h.min, h.max) == (0, 0.0, 0, 0)


def test_negative_values_count_as_zero() -> None:
    h = Histogram.of([-5])
    assert (h.count, h.min, h.percentile(50)) == (1, 0, 0)


def test_merge_adds_counts_and_keeps_extremes() -> None:
    a = Histogram.of([10, 20, 30])
    b = Histogram.of([5, 500])
    a.merge(b)
    a.merge(Histogram())
    assert (a.count, a.min, a.max, a.total) == (5, 5, 500, 565)
    assert a.percentile(100) == 500
    empty = Histogram()
    empty.merge(b)
    assert (empty.count, empty.min, empty.max) == (2, 5, 500)


def test_to_dict_round_trips_and_is_sparse() -> None:
    h = Histogram.of([1, 1, 300, 70000])
    data = h.to_dict()
    assert len(data["buckets"]) == 3  # type: ignore[arg-type]
    back = Histogram.from_dict(data)
    assert back.counts == h.counts
    assert (back.count, back.total, back.min, back.max) == (4, 70302, 1, 70000)
