"""Which club sources are stale: the one definition dispatch's metrics, its log line and `cappi status` share.

A source's age is that of the oldest list its readers see: the time since a successful poll last confirmed it
(`Pointer.checked_at_ms`), over the source's clubs. A source with a club that has no list at all, or no head at all
(never published), has no age: it is as stale as can be. An enabled source is stale when it has no age or its age
is beyond the stage's bound (`stale_after_s`); a disabled source is never stale (nobody polls it, by design).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cappi.domain.heads import Head
from cappi.domain.registry import ClubSource


def source_age_s(source: ClubSource, head: Head | None, now_ms: int) -> float | None:
    """Seconds since the oldest list readers see of `source` was last confirmed; None when a club has none."""
    if head is None:
        return None
    checked = [p.checked_at_ms for club in source.club_ids if (p := head.clubs.get(club)) is not None]
    if not checked or len(checked) < len(source.club_ids):
        return None
    return max(0.0, (now_ms - min(checked)) / 1000)


def is_stale(age_s: float | None, stale_after_s: float) -> bool:
    return age_s is None or age_s > stale_after_s


@dataclass(frozen=True, slots=True)
class Staleness:
    """The stage's enabled sources seen at one instant: which are stale, with their ages (None: never published
    or a club without a list, listed first), and the oldest age among the sources that have one."""

    checked: int  # enabled sources looked at
    stale: Mapping[str, float | None]  # stale source -> its age, most stale first
    oldest_age_s: float | None

    def describe(self) -> str:
        """The stale sources with their ages, most stale first: `alpha no list, bravo 41m`."""
        return ", ".join(f"{name} {_age_words(age)}" for name, age in self.stale.items())


def staleness(
    sources: Iterable[ClubSource], heads: Mapping[str, Head | None], *, now_ms: int, stale_after_s: float
) -> Staleness:
    """Staleness of the enabled ones among `sources`, from their heads (a source missing from `heads` never
    published)."""
    ages = {s.name: source_age_s(s, heads.get(s.name), now_ms) for s in sources if s.enabled}
    stale = {name: age for name, age in ages.items() if is_stale(age, stale_after_s)}
    ordered = dict(sorted(stale.items(), key=lambda item: (item[1] is not None, -(item[1] or 0.0), item[0])))
    known = [age for age in ages.values() if age is not None]
    return Staleness(checked=len(ages), stale=ordered, oldest_age_s=max(known) if known else None)


def _age_words(age_s: float | None) -> str:
    if age_s is None:
        return "no list"  # never published, or a club of the source has none
    if age_s < 120:
        return f"{age_s:.0f}s"
    if age_s < 7200:
        return f"{age_s / 60:.0f}m"
    return f"{age_s / 3600:.1f}h"
