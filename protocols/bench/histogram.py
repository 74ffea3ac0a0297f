"""A fixed-size latency histogram with bounded relative error (HDR-style buckets).

Values are whole microseconds. Below 128 µs every value has its own bucket;
above, each power of two is split into 64 buckets, so a recorded value and the
bucket it lands in differ by less than 1/64 (1.6 %). The table never grows
(2,368 counters cover up to about 2**42 µs, 50 days), however long a run is,
and histograms from several worker processes merge by adding their counters.

Example:
    >>> h = Histogram()
    >>> for us in (100, 200, 300, 400):
    ...     h.record(us)
    >>> h.count, h.min, h.max
    (4, 100, 400)
    >>> h.percentile(50)
    200
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["Histogram"]

#: Values below this have a bucket each.
_LINEAR = 128
#: Buckets per power of two above it (and the bit shift that gives them).
_SUB = 64
_SUB_BITS = 6
#: Powers of two covered above the linear range: values up to 2**(7 + 35) µs.
_OCTAVES = 35
SIZE = _LINEAR + _SUB * _OCTAVES
_MAX_VALUE = (1 << (_SUB_BITS + 1 + _OCTAVES)) - 1


def bucket_of(value: int) -> int:
    """The index of the bucket holding ``value`` (µs, clamped to the table's range)."""
    if value < _LINEAR:
        return value if value > 0 else 0
    if value > _MAX_VALUE:
        value = _MAX_VALUE
    shift = value.bit_length() - _SUB_BITS - 1
    return _LINEAR + (shift - 1) * _SUB + (value >> shift) - _SUB


def bucket_value(index: int) -> int:
    """The value a bucket reports: the middle of the values it holds."""
    if index < _LINEAR:
        return index
    shift, sub = divmod(index - _LINEAR, _SUB)
    shift += 1
    low = (sub + _SUB) << shift
    return low + ((1 << shift) - 1) // 2


class Histogram:
    """Counts of latencies (µs) in fixed buckets, with the exact min, max and sum.

    Attributes:
        counts: one counter per bucket (``bucket_of`` maps a value to its index).
        count: how many values were recorded.
        total: their sum, for the mean.
        min: the smallest recorded value (0 when empty).
        max: the largest recorded value (0 when empty).
    """

    __slots__ = ("count", "counts", "max", "min", "total")

    def __init__(self) -> None:
        self.counts = [0] * SIZE
        self.count = 0
        self.total = 0
        self.min = 0
        self.max = 0

    def record(self, value: int) -> None:
        """Count one latency of ``value`` microseconds (negative values count as 0)."""
        if value < 0:
            value = 0
        self.counts[bucket_of(value)] += 1
        if self.count == 0 or value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        self.count += 1
        self.total += value

    def merge(self, other: Histogram) -> None:
        """Add ``other``'s counts to this histogram."""
        if other.count == 0:
            return
        counts = self.counts
        for index, n in enumerate(other.counts):
            if n:
                counts[index] += n
        self.min = other.min if self.count == 0 else min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.count += other.count
        self.total += other.total

    def percentile(self, percent: float) -> int:
        """The latency (µs) that ``percent`` % of the recorded values do not exceed.

        Exact at 0 (the minimum) and 100 (the maximum); otherwise the middle of
        the bucket, never outside [min, max]. 0 for an empty histogram.
        """
        if self.count == 0:
            return 0
        if percent <= 0:
            return self.min
        if percent >= 100:
            return self.max
        # The rank of the wanted value, 1-based: the smallest that covers percent.
        rank = max(1, -int(-(percent * self.count) // 100))
        seen = 0
        for index, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                return min(max(bucket_value(index), self.min), self.max)
        return self.max

    @property
    def mean(self) -> float:
        """The mean latency (µs); 0.0 when empty."""
        return self.total / self.count if self.count else 0.0

    def to_dict(self) -> dict[str, object]:
        """A JSON-able form (only the buckets in use), read back by :meth:`from_dict`."""
        return {"count": self.count, "total": self.total, "min": self.min, "max": self.max,
                "buckets": {str(i): n for i, n in enumerate(self.counts) if n}}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Histogram:
        """The histogram :meth:`to_dict` described."""
        h = cls()
        buckets = data.get("buckets", {})
        assert isinstance(buckets, Mapping)
        for index, n in buckets.items():
            h.counts[int(index)] = int(n)
        h.count = _int(data.get("count"))
        h.total = _int(data.get("total"))
        h.min = _int(data.get("min"))
        h.max = _int(data.get("max"))
        return h

    @classmethod
    def of(cls, values: Iterable[int]) -> Histogram:
        """A histogram of ``values`` (for tests and small samples)."""
        h = cls()
        for value in values:
            h.record(value)
        return h

    def __repr__(self) -> str:
        return f"<Histogram count={self.count} min={self.min} max={self.max}>"


def _int(value: object) -> int:
    if not isinstance(value, int):
        raise ValueError(f"not an integer: {value!r}")
    return value
