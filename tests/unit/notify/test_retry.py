"""Retry timing: exponential ceiling, full jitter, a cap, and a last attempt."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notify.domain.retry import RetryPolicy

pytestmark = pytest.mark.unit

P = RetryPolicy(max_attempts=5, base=2.0, cap=10.0)


def test_ceiling_doubles_up_to_the_cap() -> None:
    assert [P.ceiling(a) for a in range(1, 7)] == [2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_full_jitter_spans_zero_to_the_ceiling() -> None:
    assert P.delay(3, 0.0) == 0.0
    assert P.delay(3, 0.5) == 4.0
    assert P.delay(3, 0.999999) == pytest.approx(8.0, rel=1e-5)


def test_gives_up_after_the_last_attempt_or_at_once_when_permanent() -> None:
    assert P.next_delay(4, permanent=False, rand=0.5) == 5.0
    assert P.next_delay(5, permanent=False, rand=0.5) is None
    assert P.next_delay(1, permanent=True, rand=0.5) is None


@given(st.integers(1, 10_000), st.floats(0, 1))
def test_delay_is_always_within_bounds(attempt: int, rand: float) -> None:
    d = P.delay(attempt, rand)
    assert 0.0 <= d <= P.cap and d <= P.ceiling(attempt)
