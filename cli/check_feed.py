"""`cappi check-feed`: a club's feed against the integration document, before go-live.

The very parser and rules ingest uses (`cappi.domain.feed.parse_feed`) decide; this module only fetches the
feed (through the same club client) and measures it. `cli.feed_report` makes the report (every rule and warning
with counts, example rows and what to change; what CAPPI would do with the feed, and a verdict: `fail` when CAPPI
would reject it, `warn` when it would publish but rows were dropped or the feed breaks a convention, else `pass`),
`cli.feed_plan` what it would change for testers, `cli.feed_render` both for people. Secrets are read from the
environment and never printed.
"""

from __future__ import annotations

import gzip
import os
import time
from pathlib import Path
from typing import Any

from cappi.domain.registry import ClubAuth, ClubSource
from cli.feed_render import report_markdown as markdown
from cli.feed_report import FAIL, PASS, WARN, Fetched, check
from cli.target import TargetError

__all__ = [
    "FAIL",
    "PASS",
    "WARN",
    "Fetched",
    "auth_from_env",
    "check",
    "fetch_source",
    "fetch_url",
    "markdown",
    "read_file",
    "source_report",
]

FEED_PATH = "/service/calls/status"
SECRET_NAME = "check-feed"  # noqa: S105 - the in-memory name of the credential read from the environment


def read_file(path: str) -> Fetched:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise TargetError(f"cannot read {path}: {exc.strerror}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            return Fetched(b"", path, error={"code": "bad_gzip", "message": str(exc), "status": None})
    return Fetched(raw, path)


def fetch_url(url: str, *, auth: ClubAuth, secret: str | None, headers: dict[str, str], limits: Any = None) -> Fetched:
    """Fetch a URL given on the command line, its credential from the environment."""
    from cappi.adapters.secrets import StaticSecrets

    base = url[: -len(FEED_PATH)] if url.rstrip("/").endswith(FEED_PATH) else url
    source = ClubSource(
        name="check-feed",
        club_ids=frozenset({0}),
        base_url=base.rstrip("/"),
        auth=auth,
        headers=headers,
    )
    return fetch_source(source, StaticSecrets({SECRET_NAME: secret} if secret is not None else {}), limits)


def source_report(source: ClubSource, secrets: Any, snapshots: Any, *, with_plan: bool = False) -> dict[str, Any]:
    """What `cappi check-feed --source S [--plan] --json` gives (local mode's pages show it too): the source's feed
    fetched now and its report against what readers see now (a sudden drop shows as `hold`); with `with_plan`, under
    `plan`, what it would change for testers (`cli.feed_plan`). `secrets`: where the source's credential is read;
    `snapshots`: heads and shards as the query reads them (`Target.snapshots`)."""
    from cli.feed_plan import plan, published_now

    if with_plan:
        now = published_now(snapshots, source.name)
        published: dict[int, Any] = {club: entry.pointer for club, entry in now.items()}
    else:
        head = snapshots.head(source.name)
        published = dict(head.clubs) if head else {}
    fetched = fetch_source(source, secrets)
    club_ids = frozenset(source.club_ids)
    report = check(fetched, club_ids, published)
    if with_plan and fetched.error is None:
        report["plan"] = plan(fetched.body, club_ids, now)
    return report


def fetch_source(source: ClubSource, secrets: Any, limits: Any = None) -> Fetched:
    """Fetch with CAPPI's own client: HTTPS (loopback may be HTTP), same-host redirects, deadline, size cap."""
    from cappi.adapters.club_client import ClientLimits, ClubFeedClient, FeedFetchError

    started = time.perf_counter()
    try:
        result = ClubFeedClient(secrets, limits or ClientLimits()).fetch(source)
    except FeedFetchError as exc:
        error = {"code": exc.code, "message": exc.message, "status": exc.status}
        https = source.feed_url.startswith("https:")
        return Fetched(b"", source.feed_url, http={"latency_ms": _ms(started), "https": https}, error=error)
    http = {
        "status": result.status,
        "latency_ms": _ms(started),
        "bytes": len(result.body),
        "bytes_on_wire": result.bytes_on_wire,
        "compressed": result.bytes_on_wire < len(result.body),
        "content_type": result.content_type,
        "https": result.url.startswith("https:"),
        "certificate_valid": True if result.url.startswith("https:") else None,  # the client verifies it
        "attempts": result.attempts,
    }
    return Fetched(result.body, source.feed_url, http=http)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def auth_from_env(args: Any) -> tuple[ClubAuth, str | None]:
    """The auth options as a registry entry would give them (its secret named `SECRET_NAME`), and the secret read
    from the named variable."""
    options = (
        ("bearer", args.bearer_env),
        ("basic", args.basic_env),
        ("api_key", args.api_key_env),
        ("oauth2_client_credentials", args.oauth2_secret_env),
    )
    chosen = [(kind, var) for kind, var in options if var]
    if len(chosen) > 1:
        raise TargetError("give one of --bearer-env, --basic-env, --api-key-env, --oauth2-secret-env")
    if not chosen:
        return ClubAuth(), None
    kind, var = chosen[0]
    value = os.environ.get(var)
    if not value:
        raise TargetError(f"environment variable {var} (the club's credential) is not set")
    if kind == "api_key":
        if not args.api_key_header:
            raise TargetError("--api-key-env needs --api-key-header NAME")
        return ClubAuth(kind, SECRET_NAME, header=args.api_key_header), value
    if kind == "oauth2_client_credentials":
        if not (args.oauth2_token_url and args.oauth2_client_id):
            raise TargetError("--oauth2-secret-env needs --oauth2-token-url and --oauth2-client-id")
        auth = ClubAuth(
            kind,
            SECRET_NAME,
            token_url=args.oauth2_token_url,
            client_id=args.oauth2_client_id,
            scope=args.oauth2_scope or None,
            audience=args.oauth2_audience or None,
        )
        return auth, value
    return ClubAuth(kind, SECRET_NAME), value
