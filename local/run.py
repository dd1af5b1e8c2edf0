"""Start local mode: every CAPPI component on loopback, wired to the deployed handlers.

    make run            # or: .venv/bin/python -m local
    python -m local --fresh    # or CAPPI_FRESH=1: forget the kept signing key and snapshots first

What runs, all in this process unless noted:
- moto's server for DynamoDB and SSM Parameter Store (the table created as the stack defines it, club credentials
  loaded into their SecureString parameters as `cappi secrets set` writes them deployed);
- the gateway on CAPPI_PORT: the emulated HTTP API with the JWT authorizer in front of the query handler, and the
  local token issuer's endpoints;
- the scheduler: the dispatch handler at start and every CAPPI_INGEST_INTERVAL seconds;
- ingest: the ingest handler in worker processes, one invocation per club source, as Lambda's async invoke does;
- the simulated demo clubs, unless CAPPI_CLUBS_FILE names a registry of real (or your own) club feeds.
Handler logs and metrics go to .local/logs/ as they would to CloudWatch; the console gets one line per event.
The issuer's signing key and the snapshot table are kept in CAPPI_STATE_DIR across restarts (local/state.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from cappi.contracts.api import METHOD, ROUTE
from cappi.contracts.local_state import ENDPOINTS_FILE, STALE_POLLS, endpoints_document
from cappi.contracts.metrics import NAMESPACE
from cappi.domain.registry import ClubRegistry, RegistryError, load_registry
from cappi.settings import IngestSettings, QuerySettings, SettingsError
from local.aws import LOCAL_TIMEOUTS, TABLE_NAME, LocalAws
from local.clients import ClientsFileError, demo_clients, load_clients
from local.config import CLUBS_FILE, LocalConfig, LocalConfigError, load_secrets
from local.console import Console, banner, describe_poll, examples
from local.demo_clubs import ClubFeedServer, DemoClubs
from local.gateway import Gateway, serialized
from local.http_api import HttpApi, Route
from local.iam import Decision, role_of
from local.issuer import TokenIssuer, routes
from local.jwt_authorizer import AuthorizerConfig, JwksCache, JwtAuthorizer
from local.pages import Instance, Pages
from local.pages.feed_report import feed_report
from local.scheduler import Scheduler
from local.state import DurableHeads, KeptTable, KeyFileError, discard, kept_client, signing_key

INGEST_HANDLER = "cappi.handlers.ingest.handler"
FUNCTION_ROLES = ("dispatch", "ingest", "query")


class AuthorizedInvoker:
    """Dispatch's deployed invoker asks Lambda (moto, enforcing the dispatch role's statements) to start an ingest,
    and the local pool runs it: a refused invoke fails the dispatch of that source as it would deployed."""

    def __init__(self, lambda_invoker: Any, pool: Any) -> None:
        self._lambda = lambda_invoker
        self._pool = pool

    def invoke_async(self, payload: dict[str, Any]) -> None:
        self._lambda.invoke_async(payload)
        self._pool.invoke_async(payload)


def _say_refused(console: Console, decision: Decision) -> None:
    """One clear line when a handler's call is refused: the stack would refuse it too."""
    role = role_of(decision.principal)
    if decision.allowed or role is None:
        return
    console.event(
        f"AccessDenied: the {role} function may not call {decision.action} on {decision.resource}; the stack "
        f"does not grant it (functions/cappi/contracts/permissions.py)"
    )


def example_query(registry: ClubRegistry) -> tuple[int, str] | None:
    """A club and a technician with open calls, from what the first polls published (a custom clubs file)."""
    from cappi.adapters.aws_client import aws_client
    from cappi.adapters.dynamo.shard_source import DynamoShardSource
    from cappi.adapters.dynamo.table import SnapshotTable

    # Local mode's moto, from the environment.
    table = SnapshotTable(aws_client("dynamodb", LOCAL_TIMEOUTS), TABLE_NAME)
    snapshots = DynamoShardSource(table)
    for source in registry.enabled_sources:
        head = snapshots.head(source.name)
        for club_id, pointer in sorted(head.clubs.items()) if head else ():
            for shard in range(pointer.shard_count):
                techs = snapshots.read_shard(club_id, pointer.version, shard)
                tech = next((t for t, calls in sorted(techs.items()) if calls), None)
                if tech is not None:
                    return club_id, tech
    return None


def placeholder_club(registry: ClubRegistry) -> int:
    """The club the first examples name before a poll published a technician: the registry's first enabled club."""
    clubs = sorted(c for source in registry.enabled_sources for c in source.club_ids)
    return clubs[0] if clubs else 1


def _pages(
    config: LocalConfig, registry: ClubRegistry, issuer: TokenIssuer | None, aws: LocalAws, state: Path
) -> Pages:
    """The pages for people on the gateway's port (local/pages), reading the table as the operator does."""
    from cappi.adapters.dynamo.poll_log import DynamoPollLog
    from cappi.adapters.dynamo.shard_source import DynamoShardSource
    from cappi.adapters.dynamo.table import SnapshotTable

    table = SnapshotTable(aws.client("dynamodb"), TABLE_NAME)
    return Pages(
        Instance(
            base_url=config.base_url,
            audience=config.effective_audience,
            issuer=config.effective_issuer,
            client_id=issuer.clients[0].client_id if issuer is not None and issuer.clients else None,
            route=ROUTE,
            registry=registry,
            heads=DynamoShardSource(table),
            polls=DynamoPollLog(table),
            stale_after_s=STALE_POLLS * config.interval_s,
            example=lambda: example_query(registry),
            feed_report=lambda source: feed_report(state, source),
        )
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local", description="Run the whole of CAPPI on this machine.")
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="forget the kept signing key and snapshots (CAPPI_STATE_DIR) and start clean; same as CAPPI_FRESH=1",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    console = Console(sys.stdout)
    try:
        config = LocalConfig.from_env()
    except LocalConfigError as exc:
        console.say(f"cappi local: {exc}")
        return 2
    if args.fresh:
        config = dataclasses.replace(config, fresh=True)
    try:  # checked before anything starts: a bad file is one line, not a traceback after moto is up
        clients = load_clients(config.clients_file) if config.clients_file else demo_clients()
    except ClientsFileError as exc:
        console.say(f"cappi local: {exc.line()}")
        return 2

    try:
        gateway = Gateway(HttpApi([]), {}, config.host, config.port)
    except OSError as exc:
        console.say(f"cappi local: cannot listen on {config.host}:{config.port} ({exc.strerror}); set CAPPI_PORT")
        return 2
    config = dataclasses.replace(config, port=gateway.port)  # with CAPPI_PORT=0, the port the system picked

    state = config.state_dir
    try:
        (state / "logs").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        console.say(
            f"cappi local: CAPPI_STATE_DIR={state}: cannot create {state / 'logs'} ({exc.strerror or exc}); "
            "point it at a writable directory, or unset it for .local/"
        )
        return 2
    if config.fresh:
        removed = discard(state)
        console.say(
            f"cappi local: --fresh: {'removed ' + ', '.join(p.name for p in removed) if removed else 'no kept state'}"
        )
    log_file = open(state / "logs" / "cappi.log", "a", buffering=1, encoding="utf-8")  # noqa: SIM115
    sys.stdout = log_file  # the handlers' JSON logs and metrics; must happen before they are imported

    aws = LocalAws(config.host)
    aws.start(enforce=True)  # every handler under its own role's statements, as deployed (local/iam.py)
    os.environ.update(aws.environment())  # local mode's own plumbing: the operator
    aws.create_table()

    def warn(text: str) -> None:
        console.say(f"cappi local: warning: {text}")

    kept = KeptTable(kept_client(aws.client("dynamodb")), TABLE_NAME, state, warn)
    aws.wrap(lambda app: DurableHeads(app, kept.save_now))  # a publish is saved before readers can see it
    restored = kept.restore()

    club_server = None
    secrets: dict[str, str] = {}
    try:
        if config.clubs_file is None:
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

    try:
        registry = load_registry(clubs_file)
    except RegistryError as exc:  # one line: the variable, every problem, the fix
        console.say(
            f"cappi local: {CLUBS_FILE}={exc.origin}: {'; '.join(exc.problems)}; fix the file (README.md, "
            f'"Local mode settings") or unset {CLUBS_FILE} for the demo clubs'
        )
        return 2
    try:
        aws.put_secrets(secrets)
    except ValueError as exc:  # a value longer than Parameter Store holds: names the length, never the value
        console.say(f"cappi local: CAPPI_SECRETS_FILE: {exc}")
        return 2
    for source in registry.enabled_sources:
        if source.auth.secret and source.auth.secret not in secrets:
            console.say(
                f"cappi local: warning: no value for secret {source.auth.secret} (source {source.name}) in "
                f"CAPPI_SECRETS_FILE: its polls will fail until it is set (cappi secrets set {source.name})"
            )
    try:
        # The functions' settings: local mode's table and registry, the rest as its environment says
        # (DESIGN.md section 5), written back for the handlers it runs here and in the ingest workers.
        given = {"table_name": TABLE_NAME, "clubs_file": str(clubs_file)}
        ingest_settings = IngestSettings.from_env(os.environ, **given)
        # The query side counts a pending club's Retry-After down to the next poll of this schedule.
        query_settings = QuerySettings.from_env(os.environ, **given, poll_interval_s=config.interval_s)
    except SettingsError as exc:
        console.say(f"cappi local: {exc}")
        return 2
    os.environ.update(
        {
            **ingest_settings.to_env(defaults=False),
            **query_settings.to_env(),
            "POWERTOOLS_METRICS_NAMESPACE": NAMESPACE,
        }
    )
    # The query handler checks the route's scope again, from this setting: an override must change both.
    required_scope = query_settings.required_scope

    extra_routes: dict = {}
    issuer = None
    if config.issuer is None:
        try:
            key, reused = signing_key(state, warn)
        except KeyFileError as exc:
            console.say(f"cappi local: {exc}")
            return 2
        issuer = TokenIssuer(config.local_issuer, config.effective_audience, clients, signing_key=key)
        extra_routes = routes(issuer)
        jwks = JwksCache(
            config.local_issuer + ".well-known/jwks.json", fetch=lambda _uri: json.dumps(issuer.jwks()).encode()
        )
    else:
        jwks = JwksCache(config.effective_issuer + ".well-known/jwks.json")
    try:
        authorizer_config = AuthorizerConfig(
            issuer=config.effective_issuer, audience=config.effective_audience, required_scopes=(required_scope,)
        )
    except ValueError as exc:
        console.say(f"cappi local: {QuerySettings.variables()['required_scope'].name}: {exc}")
        return 2
    authorizer = JwtAuthorizer(authorizer_config, jwks)

    from cappi.adapters.dynamo.shard_source import DynamoShardSource
    from cappi.adapters.dynamo.table import SnapshotTable
    from cappi.adapters.lambda_invoker import LambdaInvoker
    from cappi.handlers import dispatch, query
    from local.lambda_pool import LocalAsyncInvoker

    roles = {role: aws.function_credentials(role, TABLE_NAME, registry.secret_names) for role in FUNCTION_ROLES}
    assert aws.decisions is not None
    aws.decisions.listen(lambda decision: _say_refused(console, decision))
    query_session = roles["query"].session(aws.region)
    query_handler = query.make_handler(lambda: query.QueryDependencies.from_env(session=query_session))
    gateway.api = HttpApi(
        [Route(METHOD, ROUTE, serialized(query_handler), authorizer, function_name="cappi-local-query")],
        domain_name=f"{config.host}:{config.port}",
    )
    gateway.extra_routes = extra_routes
    gateway.pages = _pages(config, registry, issuer, aws, state)

    first_polls: dict[str, threading.Event] = {s.name: threading.Event() for s in registry.enabled_sources}

    def on_result(payload: dict[str, Any], result: dict[str, Any] | None, error: BaseException | None) -> None:
        console.event(describe_poll(payload, result, error))
        kept.save_soon()
        done = first_polls.get(payload.get("source", ""))
        if done is not None:
            done.set()

    invoker = LocalAsyncInvoker(
        INGEST_HANDLER,
        workers=max(1, min(4, len(registry.enabled_sources))),
        environment={**os.environ, **roles["ingest"].environment()},  # Lambda hands a function its role's keys
        log_path=str(state / "logs" / "ingest.log"),
        on_result=on_result,
        on_warning=lambda text: console.event(f"warning: {text}"),
    )
    dispatch_session = roles["dispatch"].session(aws.region)
    lambda_client = aws.client("lambda", dispatch_session)
    start_ingest = AuthorizedInvoker(LambdaInvoker(aws.ingest_function_arn(), lambda_client), invoker)
    dispatch_heads = DynamoShardSource(SnapshotTable(aws.client("dynamodb", dispatch_session), TABLE_NAME)).heads
    # One slot: every tick starts every source, once per CAPPI_INGEST_INTERVAL; staleness as `cappi status` says it.
    tick = dispatch.make_handler(
        lambda: dispatch.DispatchDependencies(
            registry, start_ingest, dispatch_heads, stale_after_s=STALE_POLLS * config.interval_s, poll_slots=1
        )
    )
    scheduler = Scheduler(tick, config.interval_s, console)

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    gateway.start()
    endpoints = state / ENDPOINTS_FILE
    endpoints.write_text(
        json.dumps(
            endpoints_document(
                api=config.base_url,
                token_url=f"{config.effective_issuer.rstrip('/')}/oauth/token",
                audience=config.effective_audience,
                dynamodb=aws.endpoint_url,
                region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
                table=TABLE_NAME,
                clubs_file=str(Path(clubs_file).resolve()),
                ingest_interval_s=config.interval_s,
                stale_after_s=STALE_POLLS * config.interval_s,
                pid=os.getpid(),
                # `cappi` against local mode: its own calls as the operator, `cappi poll` as the ingest role.
                credentials=aws.operator.environment() if aws.operator else None,
                ingest_credentials=roles["ingest"].environment(),
            ),
            indent=2,
        )
    )
    banner(
        console,
        config,
        registry,
        clubs_file=clubs_file,
        issuer=issuer,
        aws_url=aws.endpoint_url,
        club_server=club_server,
    )
    if restored:
        console.say(f"Kept from the last run: {restored} snapshot items (answering at once), until the first poll.")
    if issuer is not None and reused:
        console.say("Kept from the last run: the issuer's signing key (tokens obtained before still work).")
    if issuer is not None:  # at once, whatever the first polls do; the real technician follows when one publishes
        examples(console, config, issuer, (placeholder_club(registry), None))
    kept.start()
    scheduler.start()
    try:
        if issuer is not None:
            for event in first_polls.values():
                if stop.wait(0) or not event.wait(timeout=60):
                    break
            # The first technician with open calls, as soon as a poll publishes one (a failing feed may take a while).
            while not stop.is_set():
                example = club_server.clubs.example_query() if club_server is not None else example_query(registry)
                if example is not None:
                    examples(console, config, issuer, example)
                    break
                stop.wait(config.interval_s)
        stop.wait()
    finally:
        console.say("\ncappi local: stopping ...")
        endpoints.unlink(missing_ok=True)
        scheduler.stopping.set()
        invoker.close()
        kept.close()
        gateway.stop()
        if club_server is not None:
            club_server.stop()
        aws.stop()
        sys.stdout = sys.__stdout__
        log_file.close()
        console.say("cappi local: stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
