from __future__ import annotations

from ingest.ratelimit import RateLimiter


def test_never_more_than_max_calls_in_any_window() -> None:
    now = [0.0]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s

    rl = RateLimiter(3, 10.0, clock=lambda: now[0], sleep=sleep)
    stamps = []
    for _ in range(7):
        rl.acquire()
        stamps.append(now[0])
        now[0] += 1.0
    for i in range(len(stamps) - 3):
        assert stamps[i + 3] - stamps[i] >= 10.0
    assert sleeps, "it had to wait"
