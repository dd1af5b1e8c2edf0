"""HTTP client that fetches one club's open-call feed (DESIGN.md section 4, outbound call rules).

One instance lives for the whole Lambda container so TCP/TLS connections and OAuth tokens are reused between
polls. Every fetch is bounded: connect and read timeouts per request, one deadline over everything a fetch
does (attempts, backoff, redirects, token calls), and a cap on the body before and after decompression.

Nothing this package raises or logs carries a secret, a token or an Authorization value. Its modules all log
under "cappi.club_client", the logger the ingest handler routes into its structured log.

One module per job:
- client: ClubFeedClient, the retry loop over attempts within the deadline
- transport: one request through the requests session
- redirects: which redirects are followed
- body: reading a body under the cap and the deadline
- decoding: gzip/deflate decoding under the cap
- retry_policy: which statuses are retried, and how long to wait
- auth, credentials, oauth2: the headers per auth type, the secrets behind them, OAuth2 tokens
- client_cert: an mtls source's client certificate, as private files for the TLS handshake
- deadline, fetch_run: the time budget and the state of one fetch
- redaction: secrets out of errors, logs and excerpts
- secret_forms: a secret found in every form a club may echo it in (JSON, HTML, percent, base64)
- errors: FeedFetchError and its codes
"""

from cappi.adapters.club_client.client import ClientLimits, ClubFeedClient, FetchResult
from cappi.adapters.club_client.errors import FETCH_ERROR_CODES, FeedFetchError
from cappi.adapters.club_client.redirects import REDIRECT_STATUSES

__all__ = [
    "FETCH_ERROR_CODES",
    "REDIRECT_STATUSES",
    "ClientLimits",
    "ClubFeedClient",
    "FeedFetchError",
    "FetchResult",
]
