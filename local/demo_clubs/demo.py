"""The demo clubs local mode starts by default: tens, thousands and over ten thousand open calls, each behind
another kind of authentication.

    demo-small   club 212        ~40 calls      bearer token, plus the document's Ident and User-Agent headers
    demo-medium  clubs 213, 214  ~3,000 calls   API key in X-Api-Key
    demo-large   club 300        ~12,000 calls  OAuth2 client credentials against the club's own /oauth/token
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from local.demo_clubs.club import ClubSimulator
from local.demo_clubs.credentials import DOCUMENT_HEADERS
from local.demo_clubs.simulation import DEFAULT_SEED


class DemoClubs:
    """The three demo clubs local mode starts by default (or any set of simulators given as `clubs`)."""

    def __init__(self, seed: int = DEFAULT_SEED, *, clubs: Sequence[ClubSimulator] | None = None) -> None:
        if clubs is None:
            clubs = (
                ClubSimulator(
                    "demo-small",
                    [212],
                    size=40,
                    auth="bearer",
                    secret="local-demo-small-bearer-token",  # noqa: S106 - a simulated club's, printed on purpose
                    required_headers=DOCUMENT_HEADERS,
                    seed=seed,
                ),
                ClubSimulator(
                    "demo-medium",
                    [213, 214],
                    size=3000,
                    auth="api_key",
                    secret="local-demo-medium-api-key",  # noqa: S106
                    api_key_header="X-Api-Key",
                    seed=seed,
                ),
                ClubSimulator(
                    "demo-large",
                    [300],
                    size=12_000,
                    auth="oauth2_client_credentials",
                    secret="local-demo-large-client-secret",  # noqa: S106
                    client_id="cappi-local",
                    seed=seed,
                ),
            )
        names = [c.name for c in clubs]
        if len(set(names)) != len(names):
            raise ValueError("club names must be unique")
        self.clubs: tuple[ClubSimulator, ...] = tuple(clubs)
        self._by_name = {c.name: c for c in self.clubs}

    def __iter__(self) -> Iterator[ClubSimulator]:
        return iter(self.clubs)

    def __getitem__(self, name: str) -> ClubSimulator:
        return self._by_name[name]

    def get(self, name: str) -> ClubSimulator | None:
        return self._by_name.get(name)

    def registry(self, base_url: str) -> dict[str, Any]:
        """A registry document for these clubs served at `base_url` (each under `{base_url}/{name}`)."""
        return {
            "comment": "Simulated demo clubs of CAPPI local mode",
            "sources": [club.registry_source(base_url) for club in self.clubs],
        }

    def secrets(self) -> dict[str, str]:
        """Secret name -> value, in the formats the feed client reads (token, API key, OAuth2 client secret)."""
        return {c.secret_name: c.secret for c in self.clubs if c.secret_name and c.secret}

    def advance(self, seconds: float) -> None:
        for club in self.clubs:
            club.advance(seconds)

    def example_query(self) -> tuple[int, str]:
        """A (ClubId, TechId) that always has open calls: for the printed curl example."""
        first = self.clubs[0]
        return first.club_ids[0], first.demo_tech
