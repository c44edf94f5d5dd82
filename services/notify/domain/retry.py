"""When to try again: exponential backoff with full jitter (AWS architecture blog, "Exponential
Backoff And Jitter"): wait a uniformly random time between 0 and min(cap, base * 2^(n-1))."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base: float = 5.0  # seconds
    cap: float = 3600.0

    def ceiling(self, attempt: int) -> float:
        """The longest wait after failed attempt number ``attempt`` (1-based)."""
        return min(self.cap, self.base * 2.0 ** max(0, min(attempt - 1, 60)))

    def delay(self, attempt: int, rand: float) -> float:
        """Full jitter; ``rand`` uniform in [0, 1) (the caller owns the randomness)."""
        return max(0.0, min(1.0, rand)) * self.ceiling(attempt)

    def next_delay(self, attempts: int, *, permanent: bool, rand: float) -> float | None:
        """Seconds until the next attempt after ``attempts`` failed ones; None: give up (dead)."""
        if permanent or attempts >= self.max_attempts:
            return None
        return self.delay(attempts, rand)
