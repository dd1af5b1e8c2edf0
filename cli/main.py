"""`cappi`: one command for ops and clubs.

Exit codes, for scripts: 0 all good, 1 the command ran and found a problem, 2 usage or access error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from typing import Any

from cappi.contracts.local_state import DEFAULT_STATE_DIR
from cappi.inert import for_terminal
from cli.calls import calls_document, open_calls, parse_time
from cli.check_feed import FAIL, auth_from_env, check, fetch_url, markdown, read_file, source_report
from cli.credentials import add_secrets_commands, migrate, set_secret, stage_credentials
from cli.findings import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE
from cli.operations import describe, poll, source_of
from cli.status import SourceStatus, registry_status
from cli.target import ROOT, Target, TargetError, local_target, stage_target

EPILOG = """exit codes: 0 all good, 1 a problem found, 2 usage or access error

examples:
  cappi status                     the local mode running on this machine (make run)
  cappi status --stage prod --json a deployed stage, with your AWS credentials and region
"""


def target_options() -> argparse.ArgumentParser:
    """Which CAPPI a subcommand talks to (every subcommand takes these)."""
    options = argparse.ArgumentParser(add_help=False)
    where = options.add_mutually_exclusive_group()
    where.add_argument("--stage", choices=("stage", "prod"), help="a deployed stage (reads its stack's outputs)")
    where.add_argument("--local", action="store_true", help="the local mode running on this machine (default)")
    options.add_argument("--state-dir", default=None, help="local mode's CAPPI_STATE_DIR (default .local/)")
    options.add_argument("--region", default=None, help="AWS region of the stage (default: your AWS configuration)")
    return options


EXIT_CODES = "exit codes: 0 all good, 1 a problem found, 2 usage or access error"


def stage_options() -> argparse.ArgumentParser:
    """For subcommands about a stage's AWS account rather than its data (preflight, smoke): no local mode."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--stage", required=True, choices=("stage", "prod"), help="the stage to check")
    options.add_argument("--region", default=None, help="AWS region of the stage (default: your AWS configuration)")
    return options


def _subcommand(
    commands: Any,
    name: str,
    *,
    summary: str,
    description: str,
    examples: str,
    exit_codes: str = EXIT_CODES,
    options: argparse.ArgumentParser | None = None,
) -> argparse.ArgumentParser:
    """A subcommand that takes the target options (or `options`), with its examples and exit codes under --help."""
    return commands.add_parser(
        name,
        parents=[options or target_options()],
        help=summary,
        description=description,
        epilog=f"{examples}\n\n{exit_codes}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _json_option(command: argparse.ArgumentParser, text: str = "print one JSON document (for scripts)") -> None:
    command.add_argument("--json", action="store_true", help=text)


def parser() -> argparse.ArgumentParser:
    from cappi.adapters.club_client import ClientLimits

    limits = ClientLimits()  # check-feed fetches under ingest's own limits unless told otherwise
    root = argparse.ArgumentParser(
        prog="cappi",
        description="Operate CAPPI: the state of every club source, against a deployed stage or local mode.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = root.add_subparsers(dest="command", metavar="COMMAND")
    status = _subcommand(
        commands,
        "status",
        summary="one row per club source: fresh, stale, failing, held, and why",
        description="One row per club source: last poll, snapshot age, calls, rejected rows, last error. "
        "Stale, failing, rejected, held and never-polled sources stand out, and make the exit code 1.",
        examples="example:\n  cappi status --stage prod --json | jq '.sources[] | select(.state != \"ok\")'",
    )
    _json_option(status)
    calls = _subcommand(
        commands,
        "calls",
        summary="the call IDs open for a technician, now or at a past moment",
        description="The call IDs a technician's app would get, from the list readers see now or from the version "
        "that was current at --at (versions are kept for at least 24 hours).",
        examples="example:\n  cappi calls 212 AB12 --at 2026-12-01T10:20Z --stage prod",
    )
    calls.add_argument("club", metavar="CLUB", help="ClubId, 1 to 3 digits")
    calls.add_argument("tech", metavar="TECH", help="TechId (matched case-insensitively)")
    calls.add_argument("--at", help="an ISO 8601 time, e.g. 2026-12-01T10:20Z (no zone: UTC)")
    _json_option(calls)
    check = _subcommand(
        commands,
        "check-feed",
        summary="a club feed's conformance report: every row rule, examples, what CAPPI would do",
        description="Check a club's feed against the integration document with the very rules ingest applies: "
        "HTTP status, latency, size, TLS, document shape, key casing, every row rule and warning with counts, up "
        "to five example rows (numbered from 1, with their CallId) and what to change, what CAPPI would do with "
        "it, and a verdict (pass, warn or fail). With --source and --plan, what it would change for testers. "
        "Credentials come from environment variables named by the options, never from the command line.",
        examples="examples:\n  cappi check-feed --file feed.json --club-ids 212,213\n"
        "  CLUB_TOKEN=... cappi check-feed --url https://calls.example-club.org --bearer-env CLUB_TOKEN "
        "--format markdown > report.md\n"
        "  cappi check-feed --source aaa-example --stage stage --plan",
        exit_codes="exit codes: 0 pass or warn, 1 fail, 2 usage or access error",
    )
    given = check.add_mutually_exclusive_group(required=True)
    given.add_argument("--file", help="a saved feed (JSON, or gzip of it)")
    given.add_argument("--url", help="the club's base URL (or the full .../service/calls/status URL)")
    given.add_argument("--source", help="a registered source: its URL, headers and secret from the stage or local mode")
    check.add_argument("--club-ids", help="the club IDs the source owns, e.g. 212,213 (default: any valid ClubId)")
    check.add_argument("--bearer-env", metavar="VAR", help="send Authorization: Bearer with the value of VAR")
    check.add_argument("--basic-env", metavar="VAR", help="send Basic auth; VAR holds user:password")
    check.add_argument("--api-key-header", metavar="NAME", help="the header that carries the API key")
    check.add_argument("--api-key-env", metavar="VAR", help="the API key's variable (with --api-key-header)")
    check.add_argument("--oauth2-token-url", metavar="URL", help="OAuth2 client credentials: the token endpoint")
    check.add_argument("--oauth2-client-id", metavar="ID", help="OAuth2 client credentials: the client ID")
    check.add_argument("--oauth2-secret-env", metavar="VAR", help="OAuth2: the variable holding the client secret")
    check.add_argument("--oauth2-scope", help="OAuth2 client credentials: scope to ask for")
    check.add_argument("--oauth2-audience", help="OAuth2 client credentials: audience to ask for")
    check.add_argument("--header", action="append", default=[], metavar="NAME=VALUE", help="an extra header")
    check.add_argument(
        "--deadline", type=float, default=limits.deadline, help=f"seconds for the whole fetch ({limits.deadline:g})"
    )
    mb = limits.max_body_bytes / 1024 / 1024
    check.add_argument("--max-mb", type=float, default=mb, help=f"body cap in MB after decompression ({mb:g})")
    check.add_argument(
        "--plan",
        action="store_true",
        help="with --source: what this feed would change for testers against what they see now (calls opened and "
        "closed per technician, and whether the drop guard would hold it)",
    )
    _json_option(check)
    check.add_argument("--format", choices=("table", "markdown"), default="table", help="report for people")
    poll = _subcommand(
        commands,
        "poll",
        summary="poll one club source now and show the outcome",
        description="Poll one club source now, as the schedule would: a deployed stage invokes its ingest function "
        "and waits for it; local mode runs the same handler here. The outcome says what readers see now, or why "
        "nothing changed.",
        examples="example:\n  cappi poll aaa-example --stage stage",
        exit_codes="exit codes: 0 the poll was good, 1 it failed, was rejected or held, 2 usage or access error",
    )
    poll.add_argument("source", metavar="SOURCE", help="the source's name in the registry")
    _json_option(poll, "print the ingest handler's summary as JSON")
    add_secrets_commands(commands, _subcommand, stage_options())
    preflight = _subcommand(
        commands,
        "preflight",
        summary="check the AWS account against a stage's synthesized template before a deploy",
        description="Check the target AWS account before a deploy, against what the stage's synthesized template "
        "defines: Lambda concurrency (quota and unreserved executions vs the template's reservations), the JWT "
        "authorizer's issuer (its discovery document and key set), a custom domain's certificate, the alarm "
        "e-mail subscription, named resources that already exist outside the stack (left by a failed first "
        "create, or retained), and every enabled source's credential parameter in SSM. One line per finding: "
        "FAIL, WARN, ok (ERROR: a check could not run), what was found and what to change. `make deploy` runs it "
        "after synth and stops on a non-zero exit.",
        examples="examples:\n  make synth && cappi preflight --stage prod\n"
        "  cappi preflight --stage stage --template cdk.out/Cappi-stage.template.json --region eu-west-1 --json",
        exit_codes="exit codes: 0 nothing blocks the deploy (warnings allowed), 1 a FAIL found, 2 usage or access "
        "error (no template, no credentials, a check could not run)",
        options=stage_options(),
    )
    preflight.add_argument("--template", help="the synthesized template (default cdk.out/Cappi-<stage>.template.json)")
    _json_option(preflight, "print one JSON document with every check")
    smoke = _subcommand(
        commands,
        "smoke",
        summary="after a deploy: ask the deployed API what a tester app would, and check the answers",
        description="Smoke-check a deployed stage: its API URL from the stack's outputs, the issuer and audience "
        "from its deployed template, a club from clubs/<stage>.json. A request without a token must be refused "
        "(401, JSON); with a smoke client's credentials in CAPPI_SMOKE_CLIENT_ID and CAPPI_SMOKE_CLIENT_SECRET (a "
        "machine-to-machine application of the stage's Auth0 tenant, authorized for the API with scope "
        "read:callids) it gets a token and asks for technician SMOKETEST: 200 or 404 with the contract's "
        "Content-Type, body and headers. `make deploy` runs it after the deploy.",
        examples="examples:\n  cappi smoke --stage stage\n"
        "  CAPPI_SMOKE_CLIENT_ID=... CAPPI_SMOKE_CLIENT_SECRET=... cappi smoke --stage prod --json",
        exit_codes="exit codes: 0 the API answers as it should (warnings allowed), 1 it does not (roll back: "
        "docs/operations.md), 2 usage or access error (no stack, no AWS credentials, smoke credentials refused)",
        options=stage_options(),
    )
    _json_option(smoke, "print one JSON document with every check")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    run = COMMANDS.get(args.command)
    if run is None:
        parser().print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return run(args)
    except TargetError as exc:
        print(f"cappi: {for_terminal(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # an unreachable table or secret, denied credentials: say so, without a traceback
        where = args.stage or "local mode"
        print(f"cappi: cannot read {where}: {type(exc).__name__}: {for_terminal(exc)}", file=sys.stderr)
        return EXIT_USAGE


def _status(args: argparse.Namespace) -> int:
    target = _target(args)
    with _progress(f"reading {target.where}"):
        now_ms = int(time.time() * 1000)
        rows = registry_status(
            target.registry, target.snapshots, target.polls, now_ms=now_ms, stale_after_s=target.stale_after_s
        )
    if args.json:
        print(json.dumps(_status_document(target, rows), indent=2))
    else:
        _print_table(target, rows)
    return EXIT_PROBLEM if any(r.problem for r in rows) else EXIT_OK


def _poll(args: argparse.Namespace) -> int:
    target = _target(args)
    with _progress(f"polling {args.source} at {target.where}"):
        summary = poll(target, args.source)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        describe(summary)
    held = any(c.get("outcome") == "held" for c in summary.get("clubs", []))
    return EXIT_OK if summary.get("status") == "ok" and not held else EXIT_PROBLEM


def _secrets(args: argparse.Namespace) -> int:
    if args.secrets_command == "migrate":
        found = migrate(stage_credentials(args.stage, args.region), overwrite=args.overwrite)
        for migration in found:
            print(migration.line())
        missing = [m.secret for m in found if m.outcome == "missing" and m.needed]
        if missing:
            print(f"cappi: {len(missing)} enabled source credential(s) not in SSM: see above", file=sys.stderr)
        return EXIT_PROBLEM if missing else EXIT_OK
    local = args.state_dir or os.environ.get("CAPPI_STATE_DIR") or ROOT / DEFAULT_STATE_DIR
    target = stage_credentials(args.stage, args.region) if args.stage else local_target(local)
    stored = set_secret(target, args.source)
    print(f"stored a new value in SSM parameter {stored.describe()} ({target.where})", file=sys.stderr)
    return EXIT_OK


def _club_ids(text: str | None) -> frozenset[int] | None:
    if not text:
        return None
    try:
        return frozenset(int(c) for c in text.split(",") if c.strip())
    except ValueError:
        raise TargetError(f"--club-ids wants numbers like 212,213, got {text!r}") from None


def _check_feed(args: argparse.Namespace) -> int:
    from cli.feed_render import plan_markdown, plan_text, report_text

    if args.plan and not args.source:
        raise TargetError("--plan needs --source: it compares the feed with what that source's testers see now")
    if args.file:
        report = check(read_file(args.file), _club_ids(args.club_ids))
    elif args.source:
        from cappi.adapters.secrets import ParameterStoreSecrets

        target = _target(args)
        source = source_of(target, args.source)
        secrets = ParameterStoreSecrets(max_age=0, client=target.client("ssm"))
        with _progress(f"fetching {source.name}"):
            report = source_report(source, secrets, target.snapshots, with_plan=args.plan)
    else:
        from cappi.adapters.club_client import ClientLimits

        auth, secret = auth_from_env(args)
        headers = dict(h.split("=", 1) for h in args.header if "=" in h)
        limits = replace(
            ClientLimits(),
            deadline=args.deadline,
            read_timeout=min(ClientLimits().read_timeout, args.deadline),
            max_body_bytes=int(args.max_mb * 1024 * 1024),
        )
        with _progress(f"fetching {args.url}"):
            fetched = fetch_url(args.url, auth=auth, secret=secret, headers=headers, limits=limits)
        report = check(fetched, _club_ids(args.club_ids))
    changes = report.get("plan")
    if args.json:
        print(json.dumps(report, indent=2))
    elif args.format == "markdown":
        print(markdown(report) + (plan_markdown(changes) if changes else ""), end="")
    else:
        print(report_text(report) + ("\n" + plan_text(changes) if changes else ""), end="")
    if args.plan and not changes and not args.json:
        print("cappi: no plan: the feed could not be fetched, so nothing would change for testers", file=sys.stderr)
    return EXIT_PROBLEM if report["verdict"] == FAIL else EXIT_OK


def _calls(args: argparse.Namespace) -> int:
    target = _target(args)
    at_ms = parse_time(args.at) if args.at else None
    club_id, tech_id, found = open_calls(target, args.club, args.tech, at_ms)
    document = calls_document(club_id, tech_id, at_ms, found)
    if args.json:
        print(json.dumps(document, indent=2))
    elif found is None:
        when = f"at {document['at']}" if at_ms is not None else "yet"
        print(f"club {club_id}: no list is kept {when} (none received, or older than the retention)")
    else:
        print(for_terminal(" ".join(document["call_ids"])) if document["call_ids"] else "(no open calls)")
        print(
            f"club {club_id} tech {for_terminal(tech_id)}: version {found.version}, fetched {document['fetched_at']}",
            file=sys.stderr,
        )
    return EXIT_OK if found is not None else EXIT_PROBLEM


def _target(args: argparse.Namespace) -> Target:
    if args.stage:
        return stage_target(args.stage, region=args.region)
    return local_target(args.state_dir or os.environ.get("CAPPI_STATE_DIR") or ROOT / DEFAULT_STATE_DIR)


def _progress(message: str) -> AbstractContextManager[Any]:
    """A spinner on stderr while a slow read runs, for people only: nothing when stderr is not a terminal."""
    if not sys.stderr.isatty():
        return nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(message)


def _status_document(target: Target, rows: list[SourceStatus]) -> dict[str, Any]:
    return {
        "target": target.where,
        "stale_after_s": target.stale_after_s,
        "problems": sum(r.problem for r in rows),
        "stale": [r.name for r in rows if r.stale],
        "sources": [r.as_json() for r in rows],
    }


STYLES = {"ok": "green", "disabled": "dim", "held": "yellow", "stale": "yellow"}


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _print_table(target: Target, rows: list[SourceStatus]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    # Colour only on a terminal (rich honours NO_COLOR); piped output gets room instead of folding.
    console = Console(width=None if sys.stdout.isatty() else 200)
    table = Table(title=f"CAPPI {target.where}: stale after {_age(target.stale_after_s)}", title_justify="left")
    for column in ("source", "clubs", "state", "last poll", "took", "age", "calls", "techs", "rejected"):
        table.add_column(column, no_wrap=column in ("source", "state", "last poll"))
    table.add_column("last error", overflow="fold")
    now_ms = time.time() * 1000
    for r in rows:
        style = STYLES.get(r.state, "bold red")
        ago = _age(now_ms / 1000 - r.last_poll_at_ms / 1000) if r.last_poll_at_ms is not None else ""
        last = f"{r.last_poll_status} {ago} ago" if r.last_poll_status else "never"
        table.add_row(
            escape(for_terminal(r.name)),
            ",".join(map(str, r.club_ids)),
            f"[{style}]{r.state_words}[/]" + (f" {r.held_clubs}" if r.held_clubs else ""),
            last,
            f"{r.last_poll_duration_s:.1f}s" if r.last_poll_duration_s is not None else "-",
            _age(r.snapshot_age_s),
            "-" if r.calls is None else str(r.calls),
            "-" if r.techs is None else str(r.techs),
            str(r.rejected_rows) if r.rejected_rows else "",
            escape(for_terminal(r.last_error or "")),  # the club's words: inert, and no rich markup
        )
    console.print(table)
    problems = sum(r.problem for r in rows)
    stale = [escape(for_terminal(r.name)) for r in rows if r.stale]
    console.print(
        f"{problems} source{'s' if problems != 1 else ''} need{'s' if problems == 1 else ''} a look"
        + (f"; {len(stale)} stale (the stage's stale alarm counts them): {', '.join(stale)}" if stale else "")
        if problems
        else "every enabled source is fresh"
    )


def _preflight(args: argparse.Namespace) -> int:
    from cli import preflight

    return preflight.command(args)


def _smoke(args: argparse.Namespace) -> int:
    from cli import smoke

    return smoke.command(args)


COMMANDS = {
    "status": _status,
    "calls": _calls,
    "check-feed": _check_feed,
    "poll": _poll,
    "secrets": _secrets,
    "preflight": _preflight,
    "smoke": _smoke,
}
