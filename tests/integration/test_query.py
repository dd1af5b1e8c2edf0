"""The query Lambda behind the emulated HTTP API: DESIGN.md section 2's rules for the tester side."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from email.utils import parsedate_to_datetime

import pytest
from support.query_support import ALPHA_212, DEFAULT_CLAIMS, FETCHED_AT_MS, Allow, query_api

from cappi.adapters.dynamo.table import SnapshotReadError
from cappi.domain.last_poll import FAILED, LastPoll
from cappi.domain.publish import publish_source
from cappi.domain.query import NO_POLL_YET_RETRY_S
from cappi.domain.snapshot import build_club_snapshot
from cappi.handlers import query

BASE = "/api/CallData/OpenCalls"


def test_open_calls_for_a_tech_in_natural_order() -> None:
    with query_api() as api:
        response = api.get(f"{BASE}/212/AB12/ids")
    assert response.status == 200
    assert response.json() == ["8655R", "8679", "9999"]
    assert response.header("Content-Type") == "application/json"


@pytest.mark.parametrize(("club", "tech"), [("212", "ab12"), ("212", "Ab12"), ("0212"[1:], "AB12")])
def test_tech_ids_match_case_insensitively(club: str, tech: str) -> None:
    with query_api() as api:
        assert api.get(f"{BASE}/{club}/{tech}/ids").json() == ["8655R", "8679", "9999"]


@pytest.mark.parametrize("tech", ["%20ab12", "AB12%20%20", "%09Ab12%09%20"])
def test_tech_ids_are_trimmed_of_surrounding_spaces_and_tabs_as_in_a_feed(tech: str) -> None:
    with query_api() as api:
        assert api.get(f"{BASE}/212/{tech}/ids").json() == ["8655R", "8679", "9999"]


def test_club_ids_with_leading_zeros() -> None:
    with query_api() as api:
        assert api.get(f"{BASE}/004/xy99/ids").json() == ["7", "8"]
        assert api.get(f"{BASE}/04/XY99/ids").json() == ["7", "8"]


def test_one_and_no_results_are_flat_arrays_by_default() -> None:
    with query_api() as api:
        assert api.get(f"{BASE}/212/EF56/ids").json() == ["42"]
        assert api.get(f"{BASE}/212/NOBODY/ids").json() == []


def test_stage_setting_nests_the_one_result_form() -> None:
    with query_api(nested_single_result=True) as api:
        assert api.get(f"{BASE}/212/EF56/ids").json() == [["42"]]
        assert api.get(f"{BASE}/212/AB12/ids").json() == ["8655R", "8679", "9999"]
        assert api.get(f"{BASE}/212/NOBODY/ids").json() == []


def test_unknown_club_is_404_and_a_club_not_polled_yet_is_503() -> None:
    with query_api() as api:
        unknown = api.get(f"{BASE}/999/AB12/ids")
        pending = api.get(f"{BASE}/300/AB12/ids")
    assert (unknown.status, unknown.json()["error"]) == (404, "unknown_club")
    assert (pending.status, pending.json()["error"]) == (503, "no_snapshot_yet")
    assert pending.header("Retry-After") == str(NO_POLL_YET_RETRY_S)  # no poll recorded: its first is pending


@pytest.mark.parametrize(("ago_s", "interval_s", "expected"), [(100, 600, 502), (0, 60, 62), (590, 600, 12)])
def test_retry_after_counts_down_to_the_sources_next_poll(ago_s: int, interval_s: int, expected: int) -> None:
    with query_api(poll_interval_s=float(interval_s)) as api:
        now_ms = int(time.time() * 1000)
        api.store.polls.record_poll(LastPoll("beta", FAILED, now_ms - ago_s * 1000, 2.0, error_code="timeout"))
        pending = api.get(f"{BASE}/300/AB12/ids")
    assert pending.status == 503
    assert expected - 1 <= int(pending.header("Retry-After")) <= expected  # a second may pass mid-test


def test_a_poll_that_is_due_already_gets_a_short_retry() -> None:
    with query_api() as api:
        api.store.polls.record_poll(LastPoll("beta", FAILED, int(time.time() * 1000) - 3_600_000, 2.0))
        assert api.get(f"{BASE}/300/AB12/ids").header("Retry-After") == str(NO_POLL_YET_RETRY_S)


def test_absence_is_looked_up_again_within_a_second_presence_is_cached() -> None:
    with query_api() as api:
        assert api.get(f"{BASE}/300/AB12/ids").status == 503
        publish_source(api.store.writer, "beta", [build_club_snapshot(300, {"AB12": [5]})], FETCHED_AT_MS)
        reads = api.reader.stats.pointer_reads
        assert api.get(f"{BASE}/300/AB12/ids").status == 503  # within the second: the absence is still cached
        assert api.reader.stats.pointer_reads == reads
        api.clock.now += 1.0
        assert api.get(f"{BASE}/300/AB12/ids").json() == ["5"]  # found the moment it was published
        reads = api.reader.stats.pointer_reads
        api.clock.now += 5.0
        assert api.get(f"{BASE}/300/AB12/ids").json() == ["5"]
        assert api.reader.stats.pointer_reads == reads  # a present pointer keeps its own, longer, age


def test_a_flood_of_queries_for_a_pending_club_reads_at_most_once_a_second() -> None:
    with query_api() as api:
        for step in range(100):
            api.clock.now = step * 0.1
            assert api.get(f"{BASE}/300/AB12/ids").status == 503
        assert api.reader.stats.pointer_reads == 10
        assert api.reader.stats.dynamodb_requests <= 20  # head plus last poll, once a second each


def test_validators_and_caching_headers() -> None:
    with query_api() as api:
        first = api.get(f"{BASE}/212/AB12/ids")
        etag = first.header("ETag")
        assert etag
        assert etag.startswith('"')
        assert first.header("Cache-Control") == "private, max-age=30"
        assert parsedate_to_datetime(first.header("Last-Modified")).timestamp() == FETCHED_AT_MS // 1000

        for if_none_match in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
            again = api.get(f"{BASE}/212/AB12/ids", [("Authorization", "Bearer t"), ("If-None-Match", if_none_match)])
            assert (again.status, again.body) == (304, b"")
            assert again.header("ETag") == etag
        for junk in ('"nope"', "garbage", "W/", ",,,", "x" * 2000):
            again = api.get(f"{BASE}/212/AB12/ids", [("Authorization", "Bearer t"), ("If-None-Match", junk)])
            assert again.status == 200
        other = api.get(f"{BASE}/212/CD34/ids")
        assert other.header("ETag") != etag


def test_a_tech_whose_calls_did_not_change_keeps_its_etag_across_snapshots() -> None:
    with query_api(pointer_max_age_s=0.0) as api:
        before = {t: api.get(f"{BASE}/212/{t}/ids").header("ETag") for t in ("AB12", "CD34")}
        changed = {**ALPHA_212, "CD34": [1234567, 5]}
        publish_source(api.store.writer, "alpha", [build_club_snapshot(212, changed)], FETCHED_AT_MS + 600_000)
        api.clock.now += 1
        after = {t: api.get(f"{BASE}/212/{t}/ids").header("ETag") for t in ("AB12", "CD34")}
    assert after["AB12"] == before["AB12"]
    assert after["CD34"] != before["CD34"]


def test_a_new_snapshot_is_served_once_the_pointer_cache_ages() -> None:
    with query_api() as api:
        assert api.get(f"{BASE}/212/EF56/ids").json() == ["42"]
        publish_source(api.store.writer, "alpha", [build_club_snapshot(212, {"EF56": [43]})], FETCHED_AT_MS + 600_000)
        api.clock.now += 9.9
        assert api.get(f"{BASE}/212/EF56/ids").json() == ["42"]
        api.clock.now += 0.2
        assert api.get(f"{BASE}/212/EF56/ids").json() == ["43"]


def test_scope_is_checked_again_in_the_handler() -> None:
    without = {**DEFAULT_CLAIMS, "scope": "openid profile"}
    with query_api(authorizer=Allow(without)) as api:
        response = api.get(f"{BASE}/212/AB12/ids")
    assert (response.status, response.json()["error"]) == (403, "insufficient_scope")
    assert 'error="insufficient_scope"' in response.header("WWW-Authenticate")
    with query_api(authorizer=Allow({**DEFAULT_CLAIMS, "scope": "openid read:callids"})) as api:
        assert api.get(f"{BASE}/212/AB12/ids").status == 200


def test_a_route_without_an_authorizer_refuses_everyone() -> None:
    class NoAuthorizer:
        def authorize(self, _header: str | None) -> None:
            raise AssertionError("not called")

    with query_api() as api:
        api.api.routes[0] = replace(api.api.routes[0], authorizer=None)
        response = api.get(f"{BASE}/212/AB12/ids")
    assert (response.status, response.json()["error"]) == (401, "unauthorized")
    assert response.header("WWW-Authenticate").startswith("Bearer")


@pytest.mark.parametrize(
    ("claim", "club", "status"),
    [
        ("[212 4]", "212", 200),
        ("[212 4]", "004", 200),
        ("[4]", "212", 403),
        ("212", "212", 200),
        ("212,4", "4", 200),
        ("[]", "212", 403),
        ("everything", "212", 403),
    ],
)
def test_club_claim_limits_a_client_to_its_clubs(claim: str, club: str, status: int) -> None:
    claims = {**DEFAULT_CLAIMS, "https://cappi.clubassist.com/clubs": claim}
    with query_api(authorizer=Allow(claims)) as api:
        response = api.get(f"{BASE}/{club}/XY99/ids")
    assert response.status == status
    if status == 403:
        assert response.json()["error"] == "forbidden_club"


def test_stage_can_require_the_club_claim() -> None:
    with query_api(require_club_claim=True) as api:
        assert api.get(f"{BASE}/212/AB12/ids").json()["error"] == "forbidden_club"
    claims = {**DEFAULT_CLAIMS, "https://cappi.clubassist.com/clubs": "[212]"}
    with query_api(authorizer=Allow(claims), require_club_claim=True) as api:
        assert api.get(f"{BASE}/212/AB12/ids").status == 200


def test_a_forbidden_club_is_refused_before_revealing_whether_it_exists() -> None:
    claims = {**DEFAULT_CLAIMS, "https://cappi.clubassist.com/clubs": "[212]"}
    with query_api(authorizer=Allow(claims)) as api:
        assert api.get(f"{BASE}/999/AB12/ids").status == 403


def test_storage_trouble_is_a_503_not_a_500(monkeypatch: pytest.MonkeyPatch) -> None:
    with query_api() as api:

        def broken(*_args: object) -> None:
            raise SnapshotReadError("reading the head for source 'alpha' in table t failed: ThrottlingException")

        monkeypatch.setattr(api.reader, "open_calls", broken)
        response = api.get(f"{BASE}/212/AB12/ids")
    assert (response.status, response.json()["error"]) == (503, "unavailable")


def test_an_unexpected_bug_is_a_json_500(monkeypatch: pytest.MonkeyPatch) -> None:
    with query_api() as api:
        monkeypatch.setattr(api.reader, "open_calls", lambda *_a: 1 / 0)
        response = api.get(f"{BASE}/212/AB12/ids")
    assert (response.status, response.json()["error"]) == (500, "internal_error")


def test_logs_carry_request_id_and_client_never_the_token(capsys: pytest.CaptureFixture[str]) -> None:
    import io

    stream = io.StringIO()
    previous = query.logger.registered_handler.setStream(stream)
    try:
        with query_api() as api:
            response = api.get(f"{BASE}/212/AB12/ids", [("Authorization", "Bearer sekrit.token.value")])
    finally:
        query.logger.registered_handler.setStream(previous)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    (line,) = [r for r in lines if r["message"] == "request"]
    assert line["correlation_id"] == response.header("apigw-requestid")
    assert line["client"] == "demo-client"
    assert line["status"] == 200
    assert "sekrit" not in stream.getvalue() + capsys.readouterr().out


def test_a_line_logged_while_serving_carries_the_requests_keys_and_later_lines_do_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    def broken(*_args: object) -> None:
        raise SnapshotReadError("reading the head for source 'alpha' in table t failed: ThrottlingException")

    stream = io.StringIO()
    previous = query.logger.registered_handler.setStream(stream)
    try:
        with query_api() as api:
            assert api.get(f"{BASE}/212/AB12/ids").status == 200
            monkeypatch.setattr(api.reader, "open_calls", broken)
            response = api.get(f"{BASE}/212/AB12/ids")
        query.logger.info("after the requests")
    finally:
        query.logger.registered_handler.setStream(previous)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    (error,) = [r for r in lines if r["message"] == "snapshot store unavailable"]
    assert error["correlation_id"] == response.header("apigw-requestid")
    assert error["club_id"] == 212 and error["client"] == "demo-client"
    assert error["function_name"] and error["function_request_id"] and error["cold_start"] is False
    requests = [r for r in lines if r["message"] == "request"]
    assert [r["status"] for r in requests] == [200, 503]
    assert requests[0]["cold_start"] is True and "snapshot_version" in requests[0]
    assert "snapshot_version" not in requests[1]  # nothing of the first request's notes leaks into the second
    (after,) = [r for r in lines if r["message"] == "after the requests"]
    # (other handlers' persistent Powertools keys may be there: none of this request's)
    assert "client" not in after and "club_id" not in after and "snapshot_version" not in after
    assert after.get("correlation_id") != error["correlation_id"]


def test_queries_emit_no_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    """API Gateway's own metrics count requests by status and latency: the function adds no metric series."""
    with query_api() as api:
        capsys.readouterr()
        assert api.get(f"{BASE}/212/AB12/ids").status == 200
        assert api.get(f"{BASE}/999/AB12/ids").status == 404
    assert '"_aws"' not in capsys.readouterr().out
