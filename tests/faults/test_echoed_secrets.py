"""A club that echoes the credential back in its error body, in every encoding a server framework writes it in.

Each encoding is built here with the standard library (as PHP, .NET, an HTML template, a form echo or a debug page
would write it), not with the redactor's own code. Read from its SSM SecureString parameter as deployed, through
the club client and the ingest handler, neither the
secret nor any of its encoded forms may reach the poll's result, its last-poll record (what `cappi status --json`
shows), the handler's log or local mode's console line; and for any secret at all, `Redactor` removes each form.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from html.entities import html5
from typing import Any
from urllib.parse import quote, quote_plus

import boto3
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from support.aws import REGION, SNAPSHOT_TABLE
from support.club_servers import Handler, LoopbackServer, Responder, respond, serve
from support.secrets_registry import ECHOED_BEARER_SECRET
from support.stores import stores

from cappi.adapters.club_client import ClientLimits, ClubFeedClient
from cappi.adapters.club_client.redaction import RedactingFilter, Redactor
from cappi.adapters.secrets import ParameterStoreSecrets
from cappi.contracts.credentials import parameter_name
from cappi.domain.registry import ClubAuth, ClubRegistry, ClubSource
from cappi.handlers import ingest
from cappi.handlers.ingest import IngestDependencies
from cappi.observability import logger, route_library_logs_through
from local.console import describe_poll
from local.http_api import LambdaContext

FEED = "/service/calls/status"
SOURCE = "echoing-club"
LIMITS = ClientLimits(
    connect_timeout=1.0, read_timeout=0.5, deadline=2.0, max_attempts=2, backoff_base=0.01, backoff_cap=0.05
)


# --- the encodings, as the servers that echo a credential write them ----------------------------------------------


def _utf16_units(text: str) -> list[int]:
    data = text.encode("utf-16-be", "surrogatepass")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def json_php(text: str) -> str:
    """PHP's json_encode: `/` as `\\/`, non-ASCII as \\uxxxx (lower-case hex, surrogate pairs)."""
    return json.dumps(text)[1:-1].replace("/", "\\/")


def json_dotnet(text: str) -> str:
    """System.Text.Json's default encoder: HTML-sensitive characters and `+` as \\u00XX, upper-case hex."""
    escaped = json.dumps(text)[1:-1]
    escaped = re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m.group(1).upper(), escaped)
    return "".join(f"\\u{ord(c):04X}" if c in "+<>&'`" else c for c in escaped)


def json_every_char(case: Callable[[str], str]) -> Callable[[str], str]:
    return lambda text: "".join("\\u" + case(f"{unit:04x}") for unit in _utf16_units(text))


def mixed_case(hex_digits: str) -> str:
    return "".join(c.upper() if i % 2 else c for i, c in enumerate(hex_digits))


_NAMED = {value: name for name, value in sorted(html5.items(), key=lambda kv: -len(kv[0])) if name.endswith(";")}


def html_named(text: str) -> str:
    return "".join(f"&{_NAMED[c]}" if c in _NAMED else c for c in text)


def percent_lower(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quote(text, safe=""))


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8", "surrogatepass")).decode()


ENCODINGS: dict[str, Callable[[str], str]] = {
    "raw": lambda s: s,
    "percent upper-case": lambda s: quote(s, safe=""),
    "percent lower-case": percent_lower,
    "percent as in a path": quote,
    "form (plus for space)": quote_plus,
    "html named entities": html_named,
    "html escape": lambda s: html.escape(s, quote=True),
    "html decimal": lambda s: "".join(f"&#{ord(c)};" for c in s),
    "html hex": lambda s: "".join(f"&#x{ord(c):x};" for c in s),
    "html hex upper-case X, no semicolons": lambda s: "".join(f"&#X{ord(c):X}" for c in s),
    "json as PHP writes it": json_php,
    "json as .NET writes it": json_dotnet,
    "json every char upper-case": json_every_char(str.upper),
    "json every char lower-case": json_every_char(str.lower),
    "json every char mixed case": json_every_char(mixed_case),
    "json inside html": lambda s: html.escape(json_dotnet(s)),
    "json escapes as html entities": lambda s: html_named(json_every_char(str.upper)(s)),
    "percent inside json": lambda s: json_php(quote(s)),
    "base64": b64,
    "base64 url-safe": lambda s: base64.urlsafe_b64encode(s.encode("utf-8", "surrogatepass")).decode(),
    "base64 unpadded": lambda s: b64(s).rstrip("="),
    "base64 url-safe unpadded": lambda s: b64(s).rstrip("=").translate(str.maketrans("+/", "-_")),
    "base64 basic credential": lambda s: b64(f"cappi:{s}"),
    "base64 basic credential, other user": lambda s: b64(f"club-user-77:{s}").rstrip("="),
    "base64 inside json": lambda s: json_php(b64(f"u:{s}")),
    "base64 percent-encoded": lambda s: quote(b64(s), safe=""),
}


def every_form(secret: str) -> set[str]:
    return {encode(secret) for encode in ENCODINGS.values()}


# --- a loopback club that echoes the bearer secret ----------------------------------------------------------------


def echo_bearer(status: int, encode: Callable[[str], str]) -> Responder:
    def run(h: Handler) -> None:
        secret = (h.headers.get("Authorization") or "").removeprefix("Bearer ")
        body = json.dumps({"error": "invalid_token", "detail": "unknown token ECHO"}).replace("ECHO", encode(secret))
        respond(status, body.encode(), content_type="application/json")(h)

    return run


@pytest.fixture
def club() -> Iterator[LoopbackServer]:
    with serve() as server:
        yield server


@pytest.fixture(autouse=True)
def _moto_passthrough_redacted() -> Iterator[None]:
    """moto's `responses` passthrough logs full URLs (a test artefact, as in test_hostile_club_servers)."""
    passthrough = logging.getLogger("responses")
    guard = RedactingFilter()
    passthrough.addFilter(guard)
    yield
    passthrough.removeFilter(guard)


@pytest.fixture
def handler_logs() -> Iterator[io.StringIO]:
    """The handler's structured log, with the club client's lines routed into it as from_env does."""
    client_logger = logging.getLogger("cappi.club_client")
    saved = (list(client_logger.handlers), client_logger.propagate, client_logger.level)
    stream = io.StringIO()
    previous = logger.registered_handler.setStream(stream)
    route_library_logs_through(logger, "cappi.club_client")
    yield stream
    logger.registered_handler.setStream(previous)
    client_logger.handlers, client_logger.propagate = saved[0], saved[1]
    client_logger.setLevel(saved[2])


@pytest.fixture
def stored_credential(dynamodb: Any) -> None:
    """As ops store it (`cappi secrets set`), before the test turns logging up to DEBUG."""
    ssm = boto3.client("ssm", region_name=REGION)
    ssm.put_parameter(Name=parameter_name("clubs/echoing"), Value=ECHOED_BEARER_SECRET, Type="SecureString")


def poll(club: LoopbackServer, dynamodb: Any, context: LambdaContext) -> dict[str, Any]:
    source = ClubSource(
        name=SOURCE,
        club_ids=frozenset({212}),
        base_url=club.base_url,
        auth=ClubAuth(type="bearer", secret="clubs/echoing"),
    )
    store = stores(dynamodb, SNAPSHOT_TABLE)
    # The deployed path: the credential in its SecureString parameter (moto's), read through ingest's provider.
    fetcher = ClubFeedClient(ParameterStoreSecrets(client=boto3.client("ssm", region_name=REGION)), LIMITS)
    deps = IngestDependencies(
        registry=ClubRegistry((source,)), fetcher=fetcher, store=store.writer, poll_log=store.polls
    )
    event = {"source": SOURCE, "scheduled_time": "2026-12-06T21:00:00Z"}
    result: dict[str, Any] = ingest.make_handler(lambda: deps)(event, context)
    return result


@pytest.mark.parametrize("status", [401, 500])
@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_an_echoed_secret_reaches_no_result_record_log_or_console(
    encoding: str,
    status: int,
    club: LoopbackServer,
    dynamodb: Any,
    stored_credential: None,
    lambda_context: LambdaContext,
    handler_logs: io.StringIO,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)  # botocore's response bodies included: reading the parameter logs none of it
    club.route(FEED, echo_bearer(status, ENCODINGS[encoding]))

    result = poll(club, dynamodb, lambda_context)

    assert (result["status"], result["http_status"]) == ("failed", status)
    recorded = stores(dynamodb, SNAPSHOT_TABLE).polls.last_poll(SOURCE)
    assert recorded is not None and recorded.error is not None
    assert "unknown token [redacted]" in recorded.error  # the echo reached the excerpt, and was removed
    console = describe_poll({"source": SOURCE}, result, None)
    texts = {
        "poll result": json.dumps(result) + str(result.get("error")),
        "last-poll record": repr(recorded) + recorded.error,
        "handler log": handler_logs.getvalue(),
        "log records": caplog.text + " ".join(str(r.__dict__) for r in caplog.records),
        "console line": console,
        "printed": capsys.readouterr().out,
    }
    for form in every_form(ECHOED_BEARER_SECRET):
        for where, text in texts.items():
            assert form not in text, f"the secret's {encoding!r}-style form {form!r}... reached the {where}"


# --- any secret, any encoding -------------------------------------------------------------------------------------

LEFT, RIGHT = '<pre>{"error":"bad credential","token":"', '"}</pre>'


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(secret=st.text(min_size=6, max_size=40), encoding=st.sampled_from(sorted(ENCODINGS)))
def test_any_secret_in_any_encoding_is_redacted(secret: str, encoding: str) -> None:
    assume(secret not in f"{LEFT}[redacted]{RIGHT}" and secret.strip() == secret)
    redactor = Redactor()
    redactor.protect(secret)
    echoed = LEFT + ENCODINGS[encoding](secret) + RIGHT

    cleaned = redactor.clean(echoed)
    excerpt = redactor.excerpt(echoed, cut_short=False)

    assert "[redacted]" in cleaned
    for form in every_form(secret):
        assert form not in cleaned
        assert form not in excerpt


@pytest.mark.parametrize("encoding", ["json every char upper-case", "percent upper-case", "html decimal", "raw"])
def test_a_secret_cut_off_by_the_end_of_the_read_leaves_none_of_itself(encoding: str) -> None:
    """An error body read only in part may end inside the secret, even inside one escape of it."""
    redactor = Redactor()
    redactor.protect(ECHOED_BEARER_SECRET)
    before = redactor.excerpt(LEFT, cut_short=False)
    encoded = ENCODINGS[encoding](ECHOED_BEARER_SECRET)
    for cut in range(1, len(encoded)):
        excerpt = redactor.excerpt(LEFT + encoded[:cut], cut_short=True)
        assert excerpt == before, f"cut after {cut} characters of the {encoding} form"


# --- a feed that carries the secret in a row ---------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["raw", "json as PHP writes it", "json every char upper-case", "base64"])
def test_a_secret_in_a_rejected_row_reaches_no_example_record_or_console(
    encoding: str,
    club: LoopbackServer,
    dynamodb: Any,
    stored_credential: None,
    lambda_context: LambdaContext,
    handler_logs: io.StringIO,
) -> None:
    """A 200 feed is club text too: a row that carries the credential is shown as a rejected row's example."""
    echoed = ENCODINGS[encoding](ECHOED_BEARER_SECRET)
    calls = [
        {"CallId": 8679, "ClubId": 212, "TechId": "AB12"},
        {"CallId": 8680, "ClubId": 212, "TechId": f"Bearer {echoed}"},
    ]
    club.route(FEED, respond(body=json.dumps({"Result": {"Calls": calls}}).encode()))

    result = poll(club, dynamodb, lambda_context)

    assert result["rejected"], result  # the row was rejected and shown as an example
    recorded = stores(dynamodb, SNAPSHOT_TABLE).polls.last_poll(SOURCE)
    assert recorded is not None
    console = describe_poll({"source": SOURCE}, result, None)
    (shown,) = [e["value"] for examples in result["examples"].values() for e in examples]
    # Removed whole, or (when the example was cut inside it) cut off where it began.
    assert shown in ('"Bearer [redacted]"', '"Bearer ...'), shown
    for form in every_form(ECHOED_BEARER_SECRET):
        for where, text in {
            "poll result": json.dumps(result) + str(result.get("examples")),
            "last-poll record": repr(recorded),
            "handler log": handler_logs.getvalue(),
            "console line": console,
        }.items():
            assert form not in text, f"the secret's {encoding!r}-style form reached the {where}"
