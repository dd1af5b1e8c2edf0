"""Simulated club feeds for local mode's default demo: three clubs that behave like real club endpoints.

Each club answers `GET {base}/service/calls/status` with the document's `{"Result": {"Calls": [...]}}`, checks the
credentials its registry entry says CAPPI sends, and refuses anything else with 401. Their open calls change over
simulated time, as a real dispatch system's do. Every club ID has the technician DEMO1 with open calls at all
times (at least two), so printed examples work.

- `simulation`: the open calls and how they change (seeded, so a seed and a sequence of `advance` calls always
  produce the same feed);
- `credentials`: what a club accepts (bearer, basic, API key, its own OAuth2 tokens, required headers);
- `club`: one club endpoint (`ClubSimulator`): simulation, credentials, failure modes, pinned calls;
- `demo`: the three demo clubs (`DemoClubs`), their registry and their secrets;
- `server`: `ClubFeedServer`, the clubs and their control endpoints over HTTP on loopback.
"""

from local.demo_clubs.club import ClubSimulator, ControlError
from local.demo_clubs.credentials import DOCUMENT_HEADERS, ClubCredentials
from local.demo_clubs.demo import DemoClubs
from local.demo_clubs.server import ClubFeedServer
from local.demo_clubs.simulation import CallSimulation, Churn

__all__ = [
    "DOCUMENT_HEADERS",
    "CallSimulation",
    "Churn",
    "ClubCredentials",
    "ClubFeedServer",
    "ClubSimulator",
    "ControlError",
    "DemoClubs",
]
