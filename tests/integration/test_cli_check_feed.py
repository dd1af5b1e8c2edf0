"""`cappi check-feed` on a corpus of good and broken feeds, from files and from loopback club servers: the verdict,
what CAPPI would do, the rule that broke with its example rows, exit codes, and no secret in any output."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.club_servers import LoopbackServer, redirect, respond, serve, stall_after

from cli.main import main

FEED = "/service/calls/status"
TOKEN = "club-Secret-Token-0042"


def document(*rows: Any) -> bytes:
    return json.dumps({"Result": {"Calls": list(rows)}}).encode()


def row(call: Any = 1, club: Any = 212, tech: Any = "AB12", **extra: Any) -> dict[str, Any]:
    return {"CallId": call, "ClubId": club, "TechId": tech, **extra}


GOOD = [row(n, 212, f"T{n % 9}") for n in range(1, 101)]
# (name, body, club ids, verdict, would, the failed rule and its first example row, or None)
CORPUS = [
    ("good", document(*GOOD), "212", "pass", "publish", None),
    ("empty list", document(), "212", "pass", "publish", None),
    ("quoted call id", document(*GOOD, row("8655R")), "212", "warn", "publish", None),
    ("extra fields", document(*GOOD[:-1], row(5, note="x")), "212", "warn", "publish", None),
    ("one float in 101", document(*GOOD, row(1.5)), "212", "warn", "publish", ("call_id_invalid", 100)),
    (
        "negative",
        document(*GOOD[:90], *[row(-n) for n in range(1, 11)]),
        "212",
        "fail",
        "reject",
        ("call_id_invalid", 90),
    ),
    ("eight digits", document(row(12_345_678)), "212", "fail", "reject", ("call_id_invalid", 0)),
    ("boolean call", document(row(True)), "212", "fail", "reject", ("call_id_invalid", 0)),
    ("null call", document(row(None)), "212", "fail", "reject", ("call_id_missing", 0)),
    ("club as text", document(row(club="212")), "212", "fail", "reject", ("club_id_invalid", 0)),
    ("club of another source", document(row(club=213)), "212", "fail", "reject", ("club_not_owned", 0)),
    ("club of four digits", document(row(club=2120)), "212", "fail", "reject", ("club_id_invalid", 0)),
    ("tech with a slash", document(row(tech="ab/12")), "212", "fail", "reject", ("tech_id_invalid", 0)),
    ("tech with a quote", document(row(tech="ab'12")), "212", "fail", "reject", ("tech_id_invalid", 0)),
    ("tech too long", document(row(tech="A" * 33)), "212", "fail", "reject", ("tech_id_invalid", 0)),
    ("tech a number", document(row(tech=12)), "212", "fail", "reject", ("tech_id_invalid", 0)),
    ("no tech", document({"CallId": 1, "ClubId": 212}), "212", "fail", "reject", ("tech_id_missing", 0)),
    ("row a list", document([1, 212, "AB12"]), "212", "fail", "reject", ("row_not_object", 0)),
    (
        "field twice",
        b'{"Result":{"Calls":[{"CallId":1,"callid":2,"ClubId":212,"TechId":"A"}]}}',
        "212",
        "fail",
        "reject",
        ("ambiguous_field", 0),
    ),
    ("html error page", b"<!DOCTYPE html><html><body>Maintenance</body></html>", "212", "fail", "reject", None),
    ("truncated", document(*GOOD)[:-40], "212", "fail", "reject", None),
    ("no Result", b'{"Calls": []}', "212", "fail", "reject", None),
    ("Calls not a list", b'{"Result": {"Calls": {}}}', "212", "fail", "reject", None),
    ("empty body", b"", "212", "fail", "reject", None),
    ("top-level list", b"[]", "212", "fail", "reject", None),
    (
        "lower-case keys",
        b'{"result":{"calls":[{"callid":1,"clubid":212,"techid":"ab12"}]}}',
        "212",
        "pass",
        "publish",
        None,
    ),
]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any], str]:
    code = main(["check-feed", *args, "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out else {}, err


@pytest.mark.parametrize(("name", "body", "clubs", "verdict", "would", "broken"), CORPUS, ids=[c[0] for c in CORPUS])
def test_a_saved_feed_gets_the_verdict_and_rule_ingest_would_give_it(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    body: bytes,
    clubs: str,
    verdict: str,
    would: str,
    broken: tuple[str, int] | None,
) -> None:
    path = tmp_path / "feed.json"
    path.write_bytes(body)
    code, report, _ = run(capsys, "--file", str(path), "--club-ids", clubs)
    assert (report["verdict"], report["would"]) == (verdict, would)
    assert code == (1 if verdict == "fail" else 0)
    if broken is not None:
        rule, first_row = broken
        (entry,) = [r for r in report["rules"] if r["rule"] == rule]
        assert not entry["passed"]
        assert entry["examples"][0]["row"] == first_row
        assert len(entry["examples"]) <= 5
    if verdict == "pass":
        assert all(r["passed"] for r in report["rules"])


def test_gzip_files_and_club_ids_found_without_club_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "feed.json.gz"
    path.write_bytes(gzip.compress(document(row(1, 212), row(2, 213), row(3, 5000))))
    code, report, _ = run(capsys, "--file", str(path))
    assert (code, report["club_ids_found"], report["rows"], report["accepted"]) == (1, [212, 213], 3, 2)


def test_a_markdown_report_a_club_can_be_sent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "feed.json"
    path.write_bytes(document(*GOOD, row(tech="ab/12")))
    assert main(["check-feed", "--file", str(path), "--club-ids", "212", "--format", "markdown"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("# CAPPI feed check: WARN")
    # The rule in words and its code; the row numbered from 1 (the 101st row), with its CallId; then what to change.
    assert (
        '| TechId not 1 to 32 letters and digits (`tech_id_invalid`) | FAILED | 1 | row 101, CallId `1`: `"ab/12"` |'
        in text
    )
    assert "Example rows are numbered from 1" in text
    assert (
        "\n## What to change\n\n- **TechId not 1 to 32 letters and digits** (`tech_id_invalid`): Send TechId as" in text
    )


@pytest.fixture
def club() -> Iterator[LoopbackServer]:
    with serve() as server:
        yield server


def test_a_club_endpoint_with_a_bearer_secret_from_the_environment(
    club: LoopbackServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLUB_TOKEN", TOKEN)
    club.route(FEED, respond(body=document(*GOOD)))
    code, report, err = run(capsys, "--url", club.base_url, "--bearer-env", "CLUB_TOKEN", "--club-ids", "212")
    assert (code, report["verdict"], report["http"]["status"], report["http"]["https"]) == (0, "pass", 200, False)
    assert report["http"]["latency_ms"] >= 0
    assert club.requests_to(FEED)[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in json.dumps(report) + err


@pytest.mark.parametrize(
    ("responder", "code"),
    [
        (respond(401, b"{}"), "auth_failed"),
        (respond(500, b"<html>oops</html>", content_type="text/html"), "http_status"),
        (redirect("https://elsewhere.example/service/calls/status"), "redirect_refused"),
    ],
)
def test_an_unreachable_or_refusing_endpoint_fails_with_the_fetch_error(
    club: LoopbackServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, responder: Any, code: str
) -> None:
    monkeypatch.setenv("CLUB_TOKEN", TOKEN)
    club.route(FEED, responder)
    exit_code, report, err = run(capsys, "--url", club.base_url + FEED, "--bearer-env", "CLUB_TOKEN")
    assert (exit_code, report["verdict"], report["fetch_error"]["code"]) == (1, "fail", code)
    assert TOKEN not in json.dumps(report) + err


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET", raising=False)
    assert main(["check-feed", "--url", "http://127.0.0.1:9", "--bearer-env", "NOT_SET"]) == 2
    assert "NOT_SET" in capsys.readouterr().err
    assert main(["check-feed", "--file", str(tmp_path / "missing.json")]) == 2
    with pytest.raises(SystemExit) as bad:
        main(["check-feed"])
    assert bad.value.code == 2


def test_a_sudden_drop_against_what_is_published_would_be_held(tmp_path: Path) -> None:
    from cli.check_feed import check, read_file

    path = tmp_path / "feed.json"
    path.write_bytes(document(row(1), row(2)))
    report = check(read_file(str(path)), frozenset({212}), {212: 400})
    assert (report["would"], report["verdict"]) == ("hold", "warn")
    assert "club 212 (2 calls where 400 are published)" in report["reason"]
    assert check(read_file(str(path)), frozenset({212}), {212: 20})["would"] == "publish"


def test_oauth2_client_credentials_from_the_environment(
    club: LoopbackServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLUB_OAUTH_SECRET", TOKEN)
    token = json.dumps({"access_token": "issued-token-1", "token_type": "Bearer", "expires_in": 3600}).encode()
    club.route("/oauth/token", respond(body=token), method="POST")
    club.route(FEED, respond(body=document(*GOOD)))
    code, report, err = run(
        capsys,
        "--url", club.base_url, "--club-ids", "212",
        "--oauth2-token-url", club.base_url + "/oauth/token", "--oauth2-client-id", "cappi",
        "--oauth2-secret-env", "CLUB_OAUTH_SECRET",
    )  # fmt: skip
    assert (code, report["verdict"]) == (0, "pass")
    assert club.requests_to(FEED)[0].headers["authorization"] == "Bearer issued-token-1"
    assert TOKEN not in json.dumps(report) + err


@pytest.mark.parametrize(
    ("responder", "options", "codes"),
    [
        (respond(body=document(*GOOD * 40)), ["--max-mb", "0.01"], {"too_large"}),
        (stall_after(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"), ["--deadline", "1"], {"timeout", "deadline"}),
    ],
    ids=["oversize", "slow"],
)
def test_an_oversize_or_slow_feed_fails_as_ingest_would(
    club: LoopbackServer, capsys: pytest.CaptureFixture[str], responder: Any, options: list[str], codes: set[str]
) -> None:
    club.route(FEED, responder)
    code, report, _ = run(capsys, "--url", club.base_url, *options)
    assert (code, report["verdict"], report["would"]) == (1, "fail", "reject")
    assert report["fetch_error"]["code"] in codes
