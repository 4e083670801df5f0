"""The refusal audit limiter, on an injected clock: bounded records, counted suppressions."""

from __future__ import annotations

from ztos.controller.refusals import RefusalLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_record_per_identity_and_reason_per_window() -> None:
    clock = FakeClock()
    limiter = RefusalLimiter(window=60, clock=clock)
    written = [limiter.admit("cert:h1", "certificate_revoked") for _ in range(50)]
    assert written[0] == 0 and written[1:] == [None] * 49

    clock.now += 59.9
    assert limiter.admit("cert:h1", "certificate_revoked") is None
    clock.now += 0.2
    assert limiter.admit("cert:h1", "certificate_revoked") == 50, "the next record counts the suppressed"
    assert limiter.admit("cert:h1", "certificate_revoked") is None


def test_identities_and_reasons_are_limited_apart() -> None:
    limiter = RefusalLimiter(window=60, clock=FakeClock())
    assert limiter.admit("cert:h1", "certificate_revoked") == 0
    assert limiter.admit("cert:h2", "certificate_revoked") == 0
    assert limiter.admit("cert:h1", "forbidden") == 0


def test_repeated_refusals_are_an_alert_until_they_stop() -> None:
    clock = FakeClock()
    limiter = RefusalLimiter(window=60, clock=clock)
    limiter.admit("cert:once", "token_unknown")
    for _ in range(5):
        limiter.admit("cert:h1", "certificate_revoked")
    alerts = limiter.repeated()
    assert [(a.identity, a.reason, a.count) for a in alerts] == [("cert:h1", "certificate_revoked", 5)]
    clock.now += 601
    assert limiter.repeated() == []
