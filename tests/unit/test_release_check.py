"""The release check: which answers let a query release go on, which request it sends (the real query handler
answers it 200 from a published snapshot), and what it reports to CodeDeploy."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError
from botocore.response import StreamingBody
from botocore.stub import Stubber
from support.query_support import REGISTRY, SETTINGS, query_api

from cappi.adapters.codedeploy import LifecycleHookReporter
from cappi.adapters.lambda_invoker import SyncInvoker
from cappi.contracts import api
from cappi.domain import release_check as rules
from cappi.domain.heads import Head
from cappi.domain.registry import parse_registry
from cappi.handlers import http, query
from cappi.handlers import release_check as hook
from cappi.settings import ReleaseCheckSettings
from local.http_api import LambdaContext

VERSION = "arn:aws:lambda:us-east-1:123456789012:function:cappi-test-query:7"
SNAPSHOT_CLUB = rules.Probe(212, rules.PROBE_TECH, 200, "club 212 has a snapshot")
UNSERVED_CLUB = rules.Probe(999, rules.PROBE_TECH, 404, "nobody serves club 999")
DEPLOYMENT = {"DeploymentId": "d-ABCDEF123", "LifecycleEventHookExecutionId": "hook-execution-1"}


def _answer(response: dict[str, Any]) -> rules.Invocation:
    return rules.Invocation(payload=json.dumps(response).encode())


# -- the verdict ---------------------------------------------------------------------------------------------------


def test_a_json_200_with_an_array_passes() -> None:
    verdict = rules.judge(_answer(http.response(200, "[]", {"Content-Type": http.JSON})), SNAPSHOT_CLUB)
    assert verdict == rules.Verdict(True, "answered 200 with JSON for club 212", 200)


def test_the_json_404_of_an_unserved_club_passes() -> None:
    answer = http.error(404, "unknown_club", "CAPPI does not serve club 999")
    assert rules.judge(_answer(answer), UNSERVED_CLUB).passed


@pytest.mark.parametrize(
    ("invocation", "reason"),
    [
        (_answer(http.error(503, "unavailable", "retry shortly")), "answered 503"),
        (_answer(http.error(500, "internal_error", "logged")), "answered 500"),
        (
            _answer(http.response(200, "<html><body>hello</body></html>", {"Content-Type": "text/html"})),
            "Content-Type text/html",
        ),
        (_answer(http.response(200, "[]", {})), "Content-Type missing"),
        (_answer(http.response(200, "not json", {"Content-Type": http.JSON})), "without a JSON array"),
        (_answer(http.response(200, '{"a": 1}', {"Content-Type": http.JSON})), "without a JSON array"),
        (
            rules.Invocation(
                payload=b'{"errorType": "Runtime.ImportModuleError", "errorMessage": "No module named x"}',
                function_error="Unhandled",
            ),
            "the function failed (Unhandled): Runtime.ImportModuleError: No module named x",
        ),
        (
            rules.Invocation(
                payload=b'{"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 10.00 seconds"}',
                function_error="Unhandled",
            ),
            "Sandbox.Timedout",
        ),
        (rules.Invocation(failure="ReadTimeoutError: Read timeout on endpoint URL"), "no answer: ReadTimeoutError"),
        (rules.Invocation(payload=b"<html>502 Bad Gateway</html>"), "not a payload 2.0 response"),
        (rules.Invocation(payload=b'"just a string"'), "no statusCode"),
        (_answer(http.error(404, "unknown_club", "not served")), "answered 404 where a good build answers 200"),
    ],
    ids=[
        "503",
        "500",
        "html",
        "no-content-type",
        "body-not-json",
        "body-not-an-array",
        "function-error",
        "lambda-timeout",
        "invoke-timeout",
        "not-json",
        "no-status",
        "404-for-a-club-with-a-snapshot",
    ],
)
def test_anything_else_is_refused_with_its_reason(invocation: rules.Invocation, reason: str) -> None:
    verdict = rules.judge(invocation, SNAPSHOT_CLUB)
    assert not verdict.passed
    assert reason in verdict.reason


def test_a_200_where_the_404_of_an_unserved_club_is_due_is_refused() -> None:
    verdict = rules.judge(_answer(http.response(200, "[]", {"Content-Type": http.JSON})), UNSERVED_CLUB)
    assert not verdict.passed


def test_a_404_must_carry_a_json_error() -> None:
    verdict = rules.judge(_answer(http.response(404, "[]", {"Content-Type": http.JSON})), UNSERVED_CLUB)
    assert not verdict.passed
    assert "without a JSON error" in verdict.reason


# -- the question --------------------------------------------------------------------------------------------------

CHOICE_REGISTRY = parse_registry(
    {
        "sources": [
            {"name": "off", "club_ids": [1], "base_url": "https://off.example", "enabled": False},
            {"name": "quiet", "club_ids": [5], "base_url": "https://quiet.example"},
            {"name": "busy", "club_ids": [214, 213], "base_url": "https://busy.example"},
            {"name": "top", "club_ids": [999, 998], "base_url": "https://top.example"},
        ]
    }
)


def _head(source: str, clubs: Iterable[int]) -> Head:
    return Head(source, 1, dict.fromkeys(clubs))  # only the clubs are read, not their pointers


def test_the_probe_is_a_club_with_a_snapshot_of_an_enabled_source() -> None:
    heads = {"off": _head("off", [1]), "quiet": None, "busy": _head("busy", [214, 213]), "top": None}
    probe = rules.choose_probe(CHOICE_REGISTRY, heads)
    assert (probe.club_id, probe.expected_status) == (213, 200)
    assert "busy" in probe.why


def test_a_club_the_head_still_lists_but_the_registry_no_longer_gives_the_source_is_not_asked() -> None:
    heads = {"busy": _head("busy", [400]), "top": _head("top", [998])}
    assert rules.choose_probe(CHOICE_REGISTRY, heads).club_id == 998


def test_without_any_snapshot_the_probe_is_the_highest_club_nobody_serves_and_expects_404() -> None:
    probe = rules.choose_probe(CHOICE_REGISTRY, {"off": _head("off", [1])})  # a disabled source does not count
    assert (probe.club_id, probe.expected_status) == (997, 404)
    assert probe.club_id not in CHOICE_REGISTRY.club_ids


def test_the_claims_carry_the_scope_and_the_club_claim_when_the_stage_reads_one() -> None:
    claims = rules.probe_claims(SNAPSHOT_CLUB, scope="read:callids", club_claim="https://cappi.example/clubs")
    assert claims["scope"] == "read:callids"
    assert claims["https://cappi.example/clubs"] == "[212]"
    assert "https://cappi.example/clubs" not in rules.probe_claims(SNAPSHOT_CLUB, scope="s", club_claim="")


def test_the_event_is_a_payload_2_0_get_on_the_route() -> None:
    claims = rules.probe_claims(SNAPSHOT_CLUB, scope="read:callids", club_claim="")
    event = rules.probe_event(
        SNAPSHOT_CLUB, method=api.METHOD, route=api.ROUTE, claims=claims, request_id="req-1", now_ms=1_795_000_000_000
    )
    assert event["version"] == "2.0"
    assert event["routeKey"] == f"GET {api.ROUTE}"
    assert event["rawPath"] == api.path_for(212, rules.PROBE_TECH)
    assert event["pathParameters"] == {"ClubId": "212", "TechId": rules.PROBE_TECH}
    assert event["requestContext"]["http"]["method"] == "GET"
    assert event["requestContext"]["requestId"] == "req-1"
    assert event["requestContext"]["authorizer"]["jwt"] == {"claims": claims, "scopes": ["read:callids"]}
    assert http.claims_of(event) == claims


# -- the real query handler answers the question -------------------------------------------------------------------


@pytest.fixture
def published() -> Iterator[Any]:
    """moto with club 212 (source alpha) published; the query handler with the test stage's settings."""
    with query_api() as q:
        yield q


def _run_query(published: Any, event: dict[str, Any], **settings: Any) -> dict[str, Any]:
    stage = replace(SETTINGS, **settings)
    handler = query.make_handler(lambda: query.QueryDependencies(stage, published.reader, REGISTRY.club_ids))
    return handler(event, LambdaContext("cappi-test-query", "req-query"))


def _event_for(probe: rules.Probe, *, club_claim: str = SETTINGS.club_claim) -> dict[str, Any]:
    claims = rules.probe_claims(probe, scope=SETTINGS.required_scope, club_claim=club_claim)
    return rules.probe_event(probe, method=api.METHOD, route=api.ROUTE, claims=claims, request_id="req-check")


@pytest.mark.parametrize("require_club_claim", [False, True])
def test_the_query_handler_answers_the_checks_question_200(published: Any, require_club_claim: bool) -> None:
    probe = rules.choose_probe(REGISTRY, published.store.snapshots.heads([s.name for s in REGISTRY.enabled_sources]))
    assert probe.expected_status == 200
    response = _run_query(published, _event_for(probe), require_club_claim=require_club_claim)
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == []  # the probe's tech has no calls: the shard was read all the same
    assert rules.judge(_answer(response), probe).passed


def test_the_query_handler_answers_an_unserved_club_404(published: Any) -> None:
    probe = rules.choose_probe(REGISTRY, {})
    response = _run_query(published, _event_for(probe))
    assert response["statusCode"] == 404
    assert rules.judge(_answer(response), probe).passed


# -- the handler: check, then report ---------------------------------------------------------------------------


def _codedeploy(status: str | None) -> tuple[Any, Stubber]:
    client = boto3.client("codedeploy", region_name="us-east-1")
    stubber = Stubber(client)
    if status is not None:
        stubber.add_response(
            "put_lifecycle_event_hook_execution_status",
            {"lifecycleEventHookExecutionId": DEPLOYMENT["LifecycleEventHookExecutionId"]},
            {
                "deploymentId": DEPLOYMENT["DeploymentId"],
                "lifecycleEventHookExecutionId": DEPLOYMENT["LifecycleEventHookExecutionId"],
                "status": status,
            },
        )
    stubber.activate()
    return client, stubber


def _dependencies(
    heads: Mapping[str, Head | None] | Exception, answer: rules.Invocation | Any, client: Any
) -> hook.ReleaseCheckDependencies:
    settings = ReleaseCheckSettings(
        table_name="t",
        clubs_file="<test>",
        query_version=VERSION,
        required_scope=SETTINGS.required_scope,
        club_claim=SETTINGS.club_claim,
        require_club_claim=False,
    )

    def read_heads(_sources: Iterable[str]) -> Mapping[str, Head | None]:
        if isinstance(heads, Exception):
            raise heads
        return heads

    invoke = answer if callable(answer) else (lambda _event: answer)
    return hook.ReleaseCheckDependencies(settings, REGISTRY, read_heads, invoke, LifecycleHookReporter(client))


def _run_hook(deps: hook.ReleaseCheckDependencies, event: dict[str, Any] | None = None) -> dict[str, Any]:
    handler = hook.make_handler(lambda: deps)
    return handler(DEPLOYMENT if event is None else event, LambdaContext("cappi-test-release-check", "req-hook"))


def test_a_good_answer_from_the_real_query_is_reported_succeeded(published: Any) -> None:
    asked: list[dict[str, Any]] = []

    def invoke(event: dict[str, Any]) -> rules.Invocation:
        asked.append(event)
        return _answer(_run_query(published, event))

    client, stubber = _codedeploy("Succeeded")
    heads = published.store.snapshots.heads(["alpha", "beta"])
    result = _run_hook(_dependencies(heads, invoke, client))
    stubber.assert_no_pending_responses()
    assert result["passed"] is True
    assert result["reported"] == "Succeeded"
    assert (result["club_id"], result["expected_status"], result["status"]) == (4, 200, 200)
    assert result["version"] == VERSION
    assert asked[0]["requestContext"]["requestId"] == "req-hook"  # the query's log line names the check's request


@pytest.mark.parametrize(
    "answer",
    [
        _answer(http.error(503, "unavailable", "retry shortly")),
        rules.Invocation(payload=b'{"errorType": "Error", "errorMessage": "boom"}', function_error="Unhandled"),
        rules.Invocation(failure="ReadTimeoutError: Read timeout"),
    ],
    ids=["503", "function-error", "timeout"],
)
def test_a_bad_answer_is_reported_failed(answer: rules.Invocation) -> None:
    client, stubber = _codedeploy("Failed")
    result = _run_hook(_dependencies({"alpha": _head("alpha", [212])}, answer, client))
    stubber.assert_no_pending_responses()
    assert (result["passed"], result["reported"]) == (False, "Failed")


def test_an_invoke_that_raises_or_heads_that_cannot_be_read_are_reported_failed() -> None:
    def broken(_event: dict[str, Any]) -> rules.Invocation:
        raise RuntimeError("no route to Lambda")

    client, stubber = _codedeploy("Failed")
    result = _run_hook(_dependencies({}, broken, client))
    stubber.assert_no_pending_responses()
    assert "RuntimeError: no route to Lambda" in result["reason"]
    client, stubber = _codedeploy("Failed")
    result = _run_hook(_dependencies(RuntimeError("table unreadable"), _answer({}), client))
    stubber.assert_no_pending_responses()
    assert result["reason"].startswith("could not choose a club to ask")
    assert result["club_id"] is None


def test_without_a_deployment_in_the_event_nothing_is_reported() -> None:
    client, _stubber = _codedeploy(None)  # any call would fail: nothing is stubbed
    answer = _answer(http.error(404, "unknown_club", "not served"))
    result = _run_hook(_dependencies({}, answer, client), event={})
    assert (result["passed"], result["reported"]) == (True, None)


def test_a_report_codedeploy_refuses_raises_so_lambda_retries_the_hook() -> None:
    client = boto3.client("codedeploy", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.add_client_error("put_lifecycle_event_hook_execution_status", "ThrottlingException", "slow down")
    stubber.activate()
    answer = _answer(http.error(404, "unknown_club", "not served"))
    with pytest.raises(Exception, match="ThrottlingException"):
        _run_hook(_dependencies({}, answer, client))


# -- the adapter -------------------------------------------------------------------------------------------------


def test_the_invoker_names_the_version_and_passes_function_errors_through() -> None:
    client = boto3.client("lambda", region_name="us-east-1")
    stubber = Stubber(client)
    body = b'{"errorType": "Sandbox.Timedout"}'
    stubber.add_response(
        "invoke",
        {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": StreamingBody(io.BytesIO(body), len(body))},
        {"FunctionName": VERSION, "InvocationType": "RequestResponse", "Payload": b'{"a": 1}'},
    )
    stubber.add_client_error("invoke", "TooManyRequestsException", "Rate exceeded")
    with stubber:
        invoker = SyncInvoker(VERSION, client)
        assert invoker({"a": 1}) == rules.Invocation(payload=body, function_error="Unhandled")
        assert invoker({"a": 1}) == rules.Invocation(failure="TooManyRequestsException: Rate exceeded")


def test_the_invoker_turns_a_read_timeout_into_no_answer() -> None:
    class Slow:
        def invoke(self, **_kwargs: Any) -> None:
            raise ReadTimeoutError(endpoint_url="https://lambda.us-east-1.amazonaws.com")

    invocation = SyncInvoker(VERSION, Slow())({})
    assert invocation.failure is not None
    assert invocation.failure.startswith("ReadTimeoutError")


def _refused() -> Exception:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not authorized"}}, "Invoke")


def test_a_refused_invoke_is_retried_while_iam_catches_up_then_judged() -> None:
    """The grant names the version being released: its policy is moments old when CodeDeploy calls the check."""
    answers: list[Any] = [_refused(), _refused(), _answer(http.response(200, "[]", {"Content-Type": http.JSON}))]
    waits: list[float] = []

    def invoke(_event: dict[str, Any]) -> rules.Invocation:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    client, stubber = _codedeploy("Succeeded")
    deps = replace(_dependencies({"alpha": _head("alpha", [212])}, invoke, client), sleep=waits.append)
    result = _run_hook(deps)
    stubber.assert_no_pending_responses()
    assert (result["passed"], result["reported"]) == (True, "Succeeded")
    assert waits == list(hook.ACCESS_RETRY_DELAYS_S[:2])


def test_a_refusal_that_outlasts_the_retries_fails_the_release() -> None:
    def invoke(_event: dict[str, Any]) -> rules.Invocation:
        raise _refused()

    waits: list[float] = []
    client, stubber = _codedeploy("Failed")
    deps = replace(_dependencies({"alpha": _head("alpha", [212])}, invoke, client), sleep=waits.append)
    result = _run_hook(deps)
    stubber.assert_no_pending_responses()
    assert (result["passed"], result["reported"]) == (False, "Failed")
    assert "AccessDenied" in result["reason"]
    assert waits == list(hook.ACCESS_RETRY_DELAYS_S)
