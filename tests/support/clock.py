"""The one test clock: a callable giving epoch seconds that a test sets or advances (wall clock or monotonic)."""

from __future__ import annotations


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    @classmethod
    def at_ms(cls, epoch_ms: int) -> Clock:
        return cls(epoch_ms / 1000)

    @property
    def now_ms(self) -> int:
        return round(self.now * 1000)

    @now_ms.setter
    def now_ms(self, epoch_ms: int) -> None:
        self.now = epoch_ms / 1000
