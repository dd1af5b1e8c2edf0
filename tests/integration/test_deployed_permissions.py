"""Every handler path under exactly the permissions the stack grants its function, with IAM enforced.

moto runs with its IAM authentication on (local/iam.py); each handler gets credentials of a role holding only its
statements from cappi.contracts.permissions, the definition infra grants from (tests/infra/test_infra.py holds the
templates to it). Every path is driven: the dispatch tick, counting stale sources before any poll (never published),
after one (one fresh, one never published) and once a list is older than the bound; ingest's first, changed,
unchanged and failing polls, its secret read and last-poll records, the readers' index entry it writes after a head
moves (and reads back on an unchanged poll) and the delta beside a new version, read back from the version it
replaces; the query's first answer, an index refresh after its cache aged, shard reads, unknown techs and clubs, a
club not polled yet (its head read alone), and a new version followed by its delta; the release check before any
poll (an unserved club's 404), after one (a club with a snapshot) and on a build answering 503. Then least privilege
is measured both ways: no call is refused, every granted action is used, and taking away any one granted action
makes some path fail.

moto 5.2.5 does not implement CodeDeploy's PutLifecycleEventHookExecutionStatus, so the release check's report goes
to a botocore Stubber here (its calls are asserted) and that one action is left out of the two checks of use by
name (`NOT_SERVED_BY_MOTO`); tests/unit/test_release_check.py covers the call itself.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import ANY, Stubber
from support.club_servers import LoopbackServer, respond, serve
from support.query_support import Allow

from cappi.adapters.codedeploy import LifecycleHookReporter
from cappi.adapters.dynamo.schema import create_table
from cappi.contracts import api, permissions
from cappi.contracts.credentials import parameter_arn, parameter_name, parameter_patterns
from cappi.domain.registry import load_registry
from cappi.handlers import dispatch, ingest, query, release_check
from cappi.handlers import http as responses
from local.http_api import HttpApi, HttpRequest, LambdaContext, Route
from local.iam import Credentials, Decision, Principals, enforcing, role_of

REGION = "us-east-1"
TABLE = "cappi-iam-test-snapshots"
INGEST_ALIAS = "live"
SECRET = "cappi/iam-test/clubs/alpha"
FEED = "/service/calls/status"  # the registry's default feed path
ROLES = tuple(permissions.ROLE_GRANTS)
QUERY_VERSION = "7"  # the query version a release check asks
DEPLOYMENT = {"DeploymentId": "d-IAMTEST01", "LifecycleEventHookExecutionId": "hook-execution-iam"}
# Granted actions no path here can show used, each with the reason. Nothing else may be left out.
NOT_SERVED_BY_MOTO = {
    ("release-check", "codedeploy:PutLifecycleEventHookExecutionStatus"): (
        "moto 5.2.5 has no CodeDeploy PutLifecycleEventHookExecutionStatus: the report goes to a Stubber"
    ),
}


def _feed(rows: list[tuple[int, int, str]]) -> bytes:
    return json.dumps({"Result": {"Calls": [{"CallId": c, "ClubId": k, "TechId": t} for c, k, t in rows]}}).encode()


FIRST = _feed([(8679, 212, "AB12"), (9999, 212, "ab12"), (1234, 212, "CD34"), (77, 213, "EF56")])
CHANGED = _feed([(8679, 212, "AB12"), (5555, 212, "AB12"), (77, 213, "EF56")])


@dataclass
class Deployed:
    """moto on loopback with the stack's shape: the table, the club credential's parameter, one role per function."""

    endpoint: str
    operator: Credentials
    resources: dict[str, list[str]]
    clubs_file: Path
    club: LoopbackServer
    account: str

    def role(self, role: str, without: frozenset[str] = frozenset()) -> Any:
        principals = Principals(self.endpoint, REGION, self.operator)
        credentials = principals.function_role(role, self.resources, without=without)
        return credentials.session(REGION)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    from moto.core.models import default_user_config
    from moto.server import ThreadedMotoServer

    lambda_config = default_user_config.setdefault("lambda", {})
    previous_docker = lambda_config.get("use_docker")
    lambda_config["use_docker"] = False  # an asynchronous invoke is authorized and accepted, never run
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    tmp = tmp_path_factory.mktemp("deployed")
    with pytest.MonkeyPatch.context() as env, serve() as club:
        env.setenv("AWS_ENDPOINT_URL", endpoint)
        operator = Principals(endpoint, REGION).operator()
        with enforcing():
            session = operator.session(REGION)
            dynamodb = session.client("dynamodb")
            create_table(dynamodb, TABLE)
            # As `cappi secrets set` writes it: a SecureString parameter under the aws/ssm key, no stack resource.
            session.client("ssm").put_parameter(
                Name=parameter_name(SECRET), Value="t0ken-4711", Type="SecureString", Tier="Standard"
            )
            account = session.client("sts").get_caller_identity()["Account"]
            clubs_file = tmp / "clubs.json"
            clubs_file.write_text(
                json.dumps(
                    {
                        "sources": [
                            {
                                "name": "alpha",
                                "club_ids": [212, 213],
                                "base_url": club.base_url,
                                "auth": {"type": "bearer", "secret": SECRET},
                            },
                            {"name": "beta", "club_ids": [300], "base_url": club.base_url + "/beta"},
                            {  # never polled; its secret shares alpha's directory, so ingest's grant is a pattern
                                "name": "gamma",
                                "club_ids": [400],
                                "base_url": club.base_url + "/gamma",
                                "auth": {"type": "bearer", "secret": "cappi/iam-test/clubs/gamma"},
                                "enabled": False,
                            },
                        ]
                    }
                )
            )
            ingest_function = f"arn:aws:lambda:{REGION}:{account}:function:cappi-iam-test-ingest:{INGEST_ALIAS}"
            query_version = f"arn:aws:lambda:{REGION}:{account}:function:cappi-iam-test-query:{QUERY_VERSION}"
            deployment_group = (
                f"arn:aws:codedeploy:{REGION}:{account}:deploymentgroup:"
                "cappi-iam-test-query/cappi-iam-test-query-release"
            )
            resources = {
                permissions.TABLE: [dynamodb.describe_table(TableName=TABLE)["Table"]["TableArn"]],
                permissions.CLUB_SECRETS: [
                    parameter_arn(pattern, partition="aws", region=REGION, account=account)
                    for pattern in parameter_patterns(load_registry(clubs_file).secret_names)
                ],
                permissions.INGEST_FUNCTION: [ingest_function],
                permissions.QUERY_VERSIONS: [query_version],
                permissions.QUERY_DEPLOYMENT_GROUP: [deployment_group],
            }
            for name, value in {
                "CAPPI_TABLE_NAME": TABLE,
                "CAPPI_CLUBS_FILE": str(clubs_file),
                "CAPPI_INGEST_FUNCTION": ingest_function,
                "CAPPI_QUERY_VERSION": query_version,
                "CAPPI_FETCH_DEADLINE_S": "5",
                "CAPPI_POINTER_MAX_AGE_S": "0.2",  # the query's head cache ages within the test
                "CAPPI_SECRETS_MAX_AGE_S": "1",
            }.items():
                env.setenv(name, value)
            yield Deployed(endpoint, operator, resources, clubs_file, club, account)
    server.stop()
    if previous_docker is None:
        lambda_config.pop("use_docker", None)
    else:
        lambda_config["use_docker"] = previous_docker


@dataclass
class Outcomes:
    dispatched: dict[str, Any]
    polls: list[dict[str, Any]]
    answers: dict[str, tuple[int, Any]]
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)  # the release check's summaries
    stale: dict[str, Any] = field(default_factory=dict)  # each dispatch tick's stale sources (absent: unread)
    reader: Any = None  # the query's warm reader (its stats say which reads it made)


def _tick(session: Any, stale_after_s: float | None = None) -> dict[str, Any]:
    """A dispatch tick under the dispatch role; `stale_after_s` overrides the stage's bound."""

    def dependencies() -> dispatch.DispatchDependencies:
        built = dispatch.DispatchDependencies.from_env(session=session)
        return built if stale_after_s is None else replace(built, stale_after_s=stale_after_s)

    return dispatch.make_handler(dependencies)(
        {"scheduled_time": "2026-12-06T10:00:00Z"}, LambdaContext("cappi-iam-test-dispatch", "req-dispatch")
    )


def _release_check(deployed: Deployed, session: Any, answer: dict[str, Any]) -> dict[str, Any]:
    """The release check under its role, the query version answering `answer`; its report to CodeDeploy goes to a
    Stubber (moto has no PutLifecycleEventHookExecutionStatus), which holds it to this deployment; the summary's
    `reported` says which status it sent.

    moto's simple Lambda runs no code: an invoke returns what is queued for it. What the real query answers the
    check's request is tests/unit/test_release_check.py's business; here the calls and their grants are.
    """
    from moto.awslambda_simple.models import lambda_simple_backends

    queue = lambda_simple_backends[deployed.account][REGION].lambda_simple_results_queue
    queue[:] = [json.dumps(answer)]  # not another path's answer that a refused invoke left unread
    codedeploy = session.client("codedeploy")
    stubber = Stubber(codedeploy)
    stubber.add_response(
        "put_lifecycle_event_hook_execution_status",
        {"lifecycleEventHookExecutionId": DEPLOYMENT["LifecycleEventHookExecutionId"]},
        {
            "deploymentId": DEPLOYMENT["DeploymentId"],
            "lifecycleEventHookExecutionId": DEPLOYMENT["LifecycleEventHookExecutionId"],
            "status": ANY,  # what a path answers depends on what earlier runs left in the table
        },
    )

    def dependencies() -> release_check.ReleaseCheckDependencies:
        built = release_check.ReleaseCheckDependencies.from_env(session=session)
        # A refusal is retried while IAM catches up (cappi.handlers.release_check): no waiting here.
        return replace(built, report=LifecycleHookReporter(codedeploy), sleep=lambda _s: None)

    with stubber:
        summary = release_check.make_handler(dependencies)(
            dict(DEPLOYMENT), LambdaContext("cappi-iam-test-release-check", "req-release-check")
        )
        stubber.assert_no_pending_responses()
    return summary


def _ingest(session: Any, source: str) -> dict[str, Any]:
    handler = ingest.make_handler(lambda: ingest.IngestDependencies.from_env(session=session))
    try:
        return handler({"source": source}, LambdaContext("cappi-iam-test-ingest", "req-ingest"))
    except Exception as exc:
        return {"status": "raised", "error": repr(exc)}


def drive_every_path(deployed: Deployed, without: dict[str, frozenset[str]] | None = None) -> Outcomes:
    """Every path of the three handlers, in the order they meet in a stage's life; `without` takes actions away
    from a role's grants."""
    without = without or {}
    sessions = {role: deployed.role(role, without.get(role, frozenset())) for role in ROLES}
    club = deployed.club
    base = api.ROUTE.split("{")[0]

    dispatched = _tick(sessions["dispatch"])
    stale = {"never published": dispatched.get("stale")}

    query_deps: list[query.QueryDependencies] = []

    def query_dependencies() -> query.QueryDependencies:
        query_deps.append(query.QueryDependencies.from_env(session=sessions["query"]))
        return query_deps[-1]

    handler = query.make_handler(query_dependencies)
    http = HttpApi([Route(api.METHOD, api.ROUTE, handler, Allow())])

    def ask(path: str) -> tuple[int, Any]:
        response = http.handle(HttpRequest("GET", base + path, [("Authorization", "Bearer test")]))
        return response.status, response.json()

    answers: dict[str, tuple[int, Any]] = {}
    polls = []
    checks = {}
    json_type = {"Content-Type": responses.JSON}
    unserved = responses.error(404, "unknown_club", "CAPPI does not serve this club")
    # No club has a list yet: the check asks for a club nobody serves and expects the query's 404.
    checks["before any poll"] = _release_check(deployed, sessions["release-check"], unserved)
    answers["before any poll"] = ask("212/AB12/ids")
    club.route(FEED, respond(body=FIRST))
    polls.append(_ingest(sessions["ingest"], "alpha"))  # first: reads the secret, writes, records the poll
    polls.append(_ingest(sessions["ingest"], "alpha"))  # unchanged: confirms the head
    stale["one fresh"] = _tick(sessions["dispatch"]).get("stale")
    time.sleep(0.1)
    stale["one stale"] = _tick(sessions["dispatch"], stale_after_s=0.05).get("stale")
    time.sleep(1.1)  # the query looks a club it found no list for up again after a second
    answers["first"] = ask("212/AB12/ids")
    answers["second shard club"] = ask("213/EF56/ids")
    answers["unknown tech"] = ask("212/NOBODY/ids")
    answers["unknown club"] = ask("999/AB12/ids")
    answers["not polled yet"] = ask("300/AB12/ids")
    good, broken = responses.response(200, "[]", json_type), responses.error(503, "unavailable", "retry shortly")
    checks["after a poll"] = _release_check(deployed, sessions["release-check"], good)
    checks["a build answering 503"] = _release_check(deployed, sessions["release-check"], broken)
    club.route(FEED, respond(body=CHANGED))
    polls.append(_ingest(sessions["ingest"], "alpha"))  # changed: a new version
    time.sleep(0.3)  # past CAPPI_POINTER_MAX_AGE_S: the next query refreshes its heads
    answers["new version"] = ask("212/AB12/ids")
    club.route(FEED, respond(status=500, body=b"down"))
    polls.append(_ingest(sessions["ingest"], "alpha"))  # failing: only the poll record is written
    time.sleep(0.3)
    answers["after a failed poll"] = ask("212/AB12/ids")
    return Outcomes(dispatched, polls, answers, checks, stale, query_deps[-1].reader if query_deps else None)


def _used(decisions: list[Decision]) -> dict[str, set[str]]:
    used: dict[str, set[str]] = {role: set() for role in ROLES}
    for d in decisions:
        role = role_of(d.principal)
        if role in used:
            used[role].add(d.action)
    return used


def test_every_path_runs_under_its_roles_statements_and_uses_every_grant(deployed: Deployed) -> None:
    with enforcing() as decisions:
        decisions.clear()
        outcomes = drive_every_path(deployed)
        made = decisions.all()

    refused = [d for d in made if not d.allowed]
    assert not refused, f"calls the stack's grants refuse: {refused}"
    assert outcomes.dispatched["dispatched"] == ["alpha", "beta"]
    assert outcomes.stale["never published"] == {"alpha": None, "beta": None}
    assert outcomes.stale["one fresh"] == {"beta": None}  # alpha's list was just confirmed
    assert list(outcomes.stale["one stale"]) == ["beta", "alpha"]
    assert outcomes.stale["one stale"]["alpha"] > 0.05
    assert [p["status"] for p in outcomes.polls] == ["ok", "ok", "ok", "failed"]
    assert [[c["outcome"] for c in p["clubs"]] for p in outcomes.polls[:3]] == [
        ["published", "published"],
        ["unchanged", "unchanged"],
        ["published", "unchanged"],
    ]
    answers = outcomes.answers
    assert answers["before any poll"][0] == 503
    assert answers["first"] == (200, ["8679", "9999"])
    assert answers["second shard club"] == (200, ["77"])
    assert answers["unknown tech"] == (200, [])
    assert answers["unknown club"][0] == 404
    assert answers["not polled yet"][0] == 503
    assert answers["new version"] == (200, ["5555", "8679"])
    assert answers["after a failed poll"] == (200, ["5555", "8679"])  # a broken feed never erases open calls
    stats = outcomes.reader.stats
    assert stats.index_reads >= 2  # pointers come from the readers' index, refreshed as the cache aged
    assert stats.deltas_applied == 1  # club 212's cached shard followed its new version by delta

    checks = outcomes.checks
    assert (checks["before any poll"]["club_id"], checks["before any poll"]["expected_status"]) == (999, 404)
    assert (checks["after a poll"]["club_id"], checks["after a poll"]["expected_status"]) == (212, 200)
    assert [c["reported"] for c in checks.values()] == ["Succeeded", "Succeeded", "Failed"]
    assert "answered 503" in checks["a build answering 503"]["reason"]

    used = _used(made)
    for role in ROLES:
        assert used[role] == set(permissions.actions_of(role)) - _not_served(role), f"{role}: used {used[role]}"
    # The release check asked the version being released, and only it.
    invoked = {d.resource for d in made if role_of(d.principal) == "release-check" and d.action.startswith("lambda:")}
    assert invoked == set(deployed.resources[permissions.QUERY_VERSIONS])
    # Ingest read its one credential's parameter, under the directory pattern it was granted, and nothing else.
    read = {d.resource for d in made if role_of(d.principal) == "ingest" and d.action.startswith("ssm:")}
    assert read == {f"arn:aws:ssm:{REGION}:{deployed.account}:parameter/{SECRET}"}
    assert deployed.resources[permissions.CLUB_SECRETS] == [
        f"arn:aws:ssm:{REGION}:{deployed.account}:parameter/cappi/iam-test/clubs/*"
    ]


def _not_served(role: str) -> set[str]:
    return {action for (named, action) in NOT_SERVED_BY_MOTO if named == role}


def test_what_moto_cannot_serve_is_granted_named_and_still_missing_from_moto() -> None:
    from moto.codedeploy.responses import CodeDeployResponse

    for role, action in NOT_SERVED_BY_MOTO:
        assert action in permissions.actions_of(role)
    # Once moto serves it, the exclusion goes and the suite shows the grant used like the others.
    assert not hasattr(CodeDeployResponse, "put_lifecycle_event_hook_execution_status")


@pytest.mark.parametrize(
    ("role", "action"),
    [(role, action) for role in ROLES for action in sorted(permissions.actions_of(role) - _not_served(role))],
)
def test_taking_away_any_one_grant_breaks_a_path(deployed: Deployed, role: str, action: str) -> None:
    with enforcing() as decisions:
        decisions.clear()
        drive_every_path(deployed, without={role: frozenset({action})})
        refused = {(role_of(d.principal), d.action) for d in decisions.all() if not d.allowed}
    assert (role, action) in refused


def test_the_query_role_of_before_answers_503_for_every_listed_club(deployed: Deployed) -> None:
    """The defect this suite was written for: GetItem and Query without BatchGetItem refuse the head reads."""
    with enforcing() as decisions:
        decisions.clear()
        outcomes = drive_every_path(deployed, without={"query": frozenset({"dynamodb:BatchGetItem"})})
        refused = [d for d in decisions.all() if not d.allowed]
    assert outcomes.answers["first"][0] == 503
    assert outcomes.answers["first"][1]["error"] == "unavailable"
    assert {(role_of(d.principal), d.action) for d in refused} == {("query", "dynamodb:BatchGetItem")}
