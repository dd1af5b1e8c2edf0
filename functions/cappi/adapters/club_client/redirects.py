"""Which redirects a fetch follows: same origin only, no loops, a few hops at most."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

from requests.models import REDIRECT_STATI

from cappi.adapters.club_client.errors import AttemptFailure
from cappi.adapters.club_client.redaction import loggable_url
from cappi.domain.registry import check_url

REDIRECT_STATUSES = frozenset(REDIRECT_STATI)


# Not requests' redirects: they go to other hosts (dropping only Authorization) and read each 3xx body whole.
class RedirectTrail:
    """The URLs one attempt has been sent to; `url` is where the next request goes."""

    def __init__(self, url: str, max_redirects: int) -> None:
        self.url = url
        self._max_redirects = max_redirects
        self._visited = {url}
        self._hops = 0

    def follow(self, location: str | None) -> str:
        """Move on to the redirect's target, or raise AttemptFailure("redirect_refused")."""
        current = self.url
        where = loggable_url(current)
        if not location:
            raise AttemptFailure("redirect_refused", f"redirect from {where} has no Location")
        target = urljoin(current, location.strip())
        if origin(target) != origin(current):
            # Credentials ride on every feed request, so they must never follow a redirect off the origin.
            raise AttemptFailure("redirect_refused", f"redirect from {where} to another origin {loggable_url(target)}")
        problem = check_url(target)
        if problem:
            raise AttemptFailure("redirect_refused", f"redirect target {loggable_url(target)} {problem}")
        if target in self._visited:
            raise AttemptFailure("redirect_refused", f"redirect loop at {loggable_url(target)}")
        if self._hops >= self._max_redirects:
            raise AttemptFailure("redirect_refused", f"more than {self._max_redirects} redirects from {where}")
        self._visited.add(target)
        self._hops += 1
        self.url = target
        return target


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port), with the scheme's default port filled in."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    default = {"https": 443, "http": 80}.get(parts.scheme)
    return (parts.scheme, (parts.hostname or "").lower(), port or default)
