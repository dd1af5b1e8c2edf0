"""Start local mode: every CAPPI component on loopback, wired to the deployed handlers.

    make run            # or: .venv/bin/python -m local

What runs, all in this process unless noted:
- moto's server for DynamoDB and Secrets Manager (the table created as the stack defines it, club secrets loaded);
- the gateway on CAPPI_PORT: the emulated HTTP API with the JWT authorizer in front of the query handler, and the
  local token issuer's endpoints;
- the scheduler: the dispatch handler at start and every CAPPI_INGEST_INTERVAL seconds;
- ingest: the ingest handler in worker processes, one invocation per club source, as Lambda's async invoke does;
- the simulated demo clubs, unless CAPPI_CLUBS_FILE names a registry of real (or your own) club feeds.
Handler logs and metrics go to .local/logs/ as they would to CloudWatch; the console gets one line per event.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "functions"
ROUTE = "/api/CallData/OpenCalls/{ClubId}/{TechId}/ids"
INGEST_HANDLER = "cappi.handlers.ingest.handler"

if str(FUNCTIONS) not in sys.path:
    sys.path.insert(0, str(FUNCTIONS))


class Console:
    """Human-readable lines for the person running local mode (handler output goes to the log files)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def say(self, text: str = "") -> None:
        with self._lock:
            self._stream.write(text + "\n")
            self._stream.flush()

    def event(self, text: str) -> None:
        self.say(f"[{datetime.now().strftime('%H:%M:%S')}] {text}")


def describe_poll(payload: dict[str, Any], result: dict[str, Any] | None, error: BaseException | None) -> str:
    name = payload.get("source", "?")
    if error is not None:
        return f"ingest {name}: FAILED in the handler ({type(error).__name__}: {error}); see logs/ingest.log"
    assert result is not None
    if result["status"] != "ok":
        return (
            f"ingest {name}: {result['status']} ({result.get('error_code')}: {result.get('error')}); "
            "readers keep the last good snapshot"
        )
    clubs = ", ".join(
        f"club {c['club_id']} {c['outcome']} ({c['calls']} calls, {c['techs']} techs)" for c in result["clubs"]
    )
    rejected = sum(result.get("rejected", {}).values())
    extra = f", {rejected} rows rejected" if rejected else ""
    return f"ingest {name}: {clubs}{extra} in {result['fetch_seconds'] + result['parse_seconds']:.2f}s"


class Scheduler(threading.Thread):
    """EventBridge Scheduler's part: invoke the dispatch handler now and every `interval_s` seconds."""

    def __init__(self, handler: Any, interval_s: float, console: Console) -> None:
        super().__init__(name="scheduler", daemon=True)
        self._handler = handler
        self._interval_s = interval_s
        self._console = console
        self.stopping = threading.Event()

    def run(self) -> None:
        from local.http_api import LambdaContext

        while not self.stopping.is_set():
            tick = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            try:
                context = LambdaContext(function_name="cappi-local-dispatch", aws_request_id=f"dispatch-{tick}")
                result = self._handler({"scheduled_time": tick}, context)
                if result.get("failed"):
                    self._console.event(f"dispatch: could not start {sorted(result['failed'])}")
            except Exception as exc:  # the next tick tries again, as the schedule would
                self._console.event(f"dispatch failed: {type(exc).__name__}: {exc}")
            self.stopping.wait(self._interval_s)


def main() -> int:
    console = Console(sys.stdout)
    from local.config import LocalConfig, LocalConfigError, load_secrets

    try:
        config = LocalConfig.from_env()
    except LocalConfigError as exc:
        console.say(f"cappi local: {exc}")
        return 2

    from local.gateway import Gateway, serialized
    from local.http_api import HttpApi, Route

    try:
        gateway = Gateway(HttpApi([]), {}, config.host, config.port)
    except OSError as exc:
        console.say(f"cappi local: cannot listen on {config.host}:{config.port} ({exc.strerror}); set CAPPI_PORT")
        return 2
    config = type(config)(**{**config.__dict__, "port": gateway.port}) if config.port == 0 else config

    state = config.state_dir
    (state / "logs").mkdir(parents=True, exist_ok=True)
    log_file = open(state / "logs" / "cappi.log", "a", buffering=1, encoding="utf-8")  # noqa: SIM115
    sys.stdout = log_file  # the handlers' JSON logs and metrics; must happen before they are imported

    from local.aws import TABLE_NAME, LocalAws

    aws = LocalAws(config.host)
    aws.start()
    os.environ.update(aws.environment())
    aws.create_table()

    club_server = None
    secrets: dict[str, str] = {}
    try:
        if config.clubs_file is None:
            from local.clubs import ClubFeedServer, DemoClubs

            demo = DemoClubs()
            # Polls every few seconds should still see the clubs change: run their clocks faster to match.
            club_server = ClubFeedServer(demo, host=config.host, time_scale=max(1.0, 60.0 / config.interval_s))
            club_server.start()
            clubs_file = state / "demo-clubs.json"
            clubs_file.write_text(json.dumps(demo.registry(club_server.base_url), indent=2))
            secrets.update(demo.secrets())
        else:
            clubs_file = config.clubs_file
        if config.secrets_file is not None:
            secrets.update(load_secrets(config.secrets_file))
    except LocalConfigError as exc:
        console.say(f"cappi local: {exc}")
        return 2

    from cappi.domain.registry import RegistryError, load_registry

    try:
        registry = load_registry(clubs_file)
    except RegistryError as exc:
        console.say(f"cappi local: {exc}")
        return 2
    aws.put_secrets(secrets)
    os.environ.update(
        {
            "CAPPI_TABLE_NAME": TABLE_NAME,
            "CAPPI_CLUBS_FILE": str(clubs_file),
            "POWERTOOLS_METRICS_NAMESPACE": "CAPPI",
        }
    )

    from local.issuer import TokenIssuer, demo_clients, load_clients, routes
    from local.jwt_authorizer import AuthorizerConfig, JwksCache, JwtAuthorizer

    extra_routes: dict = {}
    issuer = None
    if config.issuer is None:
        clients = load_clients(config.clients_file) if config.clients_file else demo_clients()
        issuer = TokenIssuer(config.local_issuer, config.effective_audience, clients)
        extra_routes = routes(issuer)
        jwks = JwksCache(
            config.local_issuer + ".well-known/jwks.json", fetch=lambda _uri: json.dumps(issuer.jwks()).encode()
        )
    else:
        jwks = JwksCache(config.effective_issuer + ".well-known/jwks.json")
    authorizer = JwtAuthorizer(
        AuthorizerConfig(
            issuer=config.effective_issuer, audience=config.effective_audience, required_scopes=("read:callids",)
        ),
        jwks,
    )

    from cappi.handlers import dispatch, query
    from local.lambda_pool import LocalAsyncInvoker

    gateway.api = HttpApi(
        [Route("GET", ROUTE, serialized(query.handler), authorizer, function_name="cappi-local-query")],
        domain_name=f"{config.host}:{config.port}",
    )
    gateway.extra_routes = extra_routes

    first_polls: dict[str, threading.Event] = {s.name: threading.Event() for s in registry.enabled_sources}

    def on_result(payload: dict[str, Any], result: dict[str, Any] | None, error: BaseException | None) -> None:
        console.event(describe_poll(payload, result, error))
        done = first_polls.get(payload.get("source", ""))
        if done is not None:
            done.set()

    invoker = LocalAsyncInvoker(
        INGEST_HANDLER,
        workers=max(1, min(4, len(registry.enabled_sources))),
        environment=dict(os.environ),
        log_path=str(state / "logs" / "ingest.log"),
        functions_dir=str(FUNCTIONS),
        on_result=on_result,
    )
    dispatch.use(registry, invoker)
    scheduler = Scheduler(dispatch.handler, config.interval_s, console)

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    gateway.start()
    banner(console, config, registry, issuer=issuer, aws_url=aws.endpoint_url, club_server=club_server)
    scheduler.start()
    try:
        if issuer is not None and club_server is not None:
            for event in first_polls.values():
                if stop.wait(0) or not event.wait(timeout=60):
                    break
            if not stop.is_set():
                examples(console, config, issuer, club_server)
        stop.wait()
    finally:
        console.say("\ncappi local: stopping ...")
        scheduler.stopping.set()
        invoker.close()
        gateway.stop()
        if club_server is not None:
            club_server.stop()
        aws.stop()
        sys.stdout = sys.__stdout__
        log_file.close()
        console.say("cappi local: stopped.")
    return 0


def banner(console: Console, config: Any, registry: Any, *, issuer: Any, aws_url: str, club_server: Any) -> None:
    console.say("CAPPI local mode")
    console.say(f"  API + token issuer   {config.base_url}")
    console.say(f"  trusted issuer       {config.effective_issuer}   audience {config.effective_audience}")
    console.say(f"  DynamoDB + Secrets   {aws_url} (moto)")
    clubs = (
        "simulated demo clubs at " + club_server.base_url if club_server else f"from {os.environ['CAPPI_CLUBS_FILE']}"
    )
    console.say(f"  club feeds           {clubs}")
    for source in registry.sources:
        state = "" if source.enabled else " (disabled)"
        console.say(f"    {source.name}: clubs {sorted(source.club_ids)} at {source.base_url}{state}")
    console.say(f"  polls every {config.interval_s:g} s (first one now); handler logs in {config.state_dir / 'logs'}")
    if issuer is not None:
        console.say("  clients:")
        for client in issuer.clients:
            clubs_note = f", clubs {list(client.clubs)}" if client.clubs else ""
            console.say(
                f"    client_id {client.client_id}  client_secret {client.client_secret}  "
                f"scopes {' '.join(client.scopes)}{clubs_note}"
            )
    console.say("Press Ctrl-C to stop.\n")


def examples(console: Console, config: Any, issuer: Any, club_server: Any) -> None:
    client = issuer.clients[0]
    token_body = json.dumps(
        {
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "audience": config.effective_audience,
            "grant_type": "client_credentials",
        }
    )
    club_id, tech_id = club_server.clubs.example_query()
    console.say("\nGet a token (the document's Authentication request):")
    console.say(
        f"  curl -s -X POST {config.base_url}/oauth/token -H 'Content-Type: application/json' -d '{token_body}'"
    )
    console.say("\nQuery a technician with open calls:")
    console.say(
        f"  TOKEN=$(curl -s -X POST {config.base_url}/oauth/token -H 'Content-Type: application/json' "
        f"-d '{token_body}' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')"
    )
    console.say(
        f'  curl -s -H "Authorization: Bearer $TOKEN" {config.base_url}/api/CallData/OpenCalls/{club_id}/{tech_id}/ids'
    )
    console.say("")


if __name__ == "__main__":
    sys.exit(main())
