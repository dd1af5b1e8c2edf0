"""`cappi.observability.emf_documents`: one poll is one EMF line whose directive defines exactly the contract's
stage-wide series (no dimension, never a `service`), with the source and its figures, its snapshot age among them,
as plain fields beside them: no series is per source."""

from __future__ import annotations

from cappi.contracts import metrics as m
from cappi.domain.poll import PollResult
from cappi.observability import emf_documents


def _poll(**changes: object) -> PollResult:
    values: dict = {"source": "alpha", "status": "ok", "fetched_at_ms": 0, "fetch_seconds": 0.25, "rows": 200}
    values.update(changes)
    return PollResult(**values)


def test_a_poll_is_one_line_with_one_stage_wide_directive_and_the_source_as_a_field() -> None:
    result = _poll(rejected={"tech_id_invalid": 2, "call_id_invalid": 1}, snapshot_age_s={212: 4.0, 213: 9.5})
    (doc,) = emf_documents(m.poll_datapoints(result), "CAPPI/stage", timestamp_ms=1)
    directives = doc["_aws"]["CloudWatchMetrics"]
    assert [d["Dimensions"] for d in directives] == [[[]]]  # no series has a Source dimension
    assert {d["Namespace"] for d in directives} == {"CAPPI/stage"}
    stage_wide = {x["Name"] for x in directives[0]["Metrics"]}
    assert stage_wide == {metric.name for metric in m.INGEST_METRICS}
    assert all(not metric.dimensions for metric in m.ALL_METRICS)  # nothing in the contract grows with sources
    assert doc["Source"] == "alpha"
    assert doc["SnapshotAge"] == 9.5  # the oldest list's age: a log field for Logs Insights and the dashboard
    assert doc["RejectedRowsByReason"] == {"call_id_invalid": 1, "tech_id_invalid": 2}
    assert doc["Calls"] == 0
    assert "service" not in doc
    defined = {x["Name"] for d in directives for x in d["Metrics"]}
    assert defined.isdisjoint(f.name for f in m.INGEST_LOG_FIELDS)  # log fields create no series


def test_a_failed_poll_without_a_published_list_reports_no_age() -> None:
    (doc,) = emf_documents(m.poll_datapoints(_poll(status="failed", rows=0)), "CAPPI", timestamp_ms=1)
    assert "SnapshotAge" not in doc  # no list yet: dispatch counts the source as stale
    assert doc["FetchFailure"] == 1
    assert [d["Dimensions"] for d in doc["_aws"]["CloudWatchMetrics"]] == [[[]]]


def test_dimensionless_points_alone_make_one_line_and_a_two_dimension_metric_keeps_both() -> None:
    (dispatch,) = emf_documents([m.Datapoint(m.INGESTS_DISPATCHED, 3)], "CAPPI", timestamp_ms=1)
    assert dispatch["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [[]]
    assert dispatch["IngestsDispatched"] == 3
    pair = m.Metric("ByPair", m.COUNT, (m.SOURCE, m.REASON))
    docs = emf_documents(
        [m.Datapoint(pair, 1, {m.SOURCE: "a", m.REASON: "x"}), m.Datapoint(pair, 2, {m.SOURCE: "a", m.REASON: "y"})],
        "CAPPI",
        timestamp_ms=1,
    )
    assert [(d["Reason"], d["ByPair"]) for d in docs] == [("x", 1), ("y", 2)]
    assert all(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Source", "Reason"]] for d in docs)


def test_a_line_without_stored_metrics_has_no_directive() -> None:
    (doc,) = emf_documents([m.Datapoint(m.CALLS, 5, {m.SOURCE: "a"})], "CAPPI", timestamp_ms=1)
    assert doc == {"Source": "a", "Calls": 5}
