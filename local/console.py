"""What the person running local mode reads: the banner, one line per poll, and the copy-paste examples.

Handler output (JSON logs, metrics) goes to the log files instead, as it would to CloudWatch.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from cappi.contracts.api import path_for
from cappi.domain.feed import REASON_TEXT, WARNING_TEXT
from cappi.inert import for_terminal

if TYPE_CHECKING:
    from cappi.domain.registry import ClubRegistry
    from local.config import LocalConfig
    from local.demo_clubs import ClubFeedServer
    from local.issuer import TokenIssuer


class Console:
    """Human-readable lines for the person running local mode (handler output goes to the log files)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def say(self, text: str = "") -> None:
        """Print `text`, its lines made inert for the terminal (a value that slipped through unescaped still cannot
        drive the terminal; escaping is idempotent, so lines already made inert print unchanged)."""
        text = "\n".join(for_terminal(line) for line in text.split("\n"))
        with self._lock:
            self._stream.write(text + "\n")
            self._stream.flush()

    def event(self, text: str) -> None:
        self.say(f"[{datetime.now().strftime('%H:%M:%S')}] {text}")


# Why a poll did not parse its body (PollResult.unchanged_by), said after the line's usual part.
_UNCHANGED_BY = {"304": "unchanged (304), not parsed", "same_body": "unchanged (same body), not parsed"}


def describe_poll(payload: dict[str, Any], result: dict[str, Any] | None, error: BaseException | None) -> str:
    """The console line for one ingest invocation: what it published, or why the feed was refused; then, on
    indented lines, why in words: rows rejected by rule with an example each, drops held back, warnings.
    Every value that can come from a feed (error messages, excerpts, example rows) is made inert for the terminal."""
    name = for_terminal(payload.get("source", "?"))
    if error is not None:
        return (
            f"ingest {name}: FAILED in the handler ({type(error).__name__}: {for_terminal(error)}); see logs/ingest.log"
        )
    assert result is not None
    if result["status"] != "ok":
        status, code, message = (for_terminal(result.get(k)) for k in ("status", "error_code", "error"))
        line = f"ingest {name}: {status} ({code}: {message}); readers keep the last good snapshot"
    else:
        clubs = ", ".join(
            f"club {for_terminal(c['club_id'])} {for_terminal(c['outcome'])} ({c['calls']} calls, {c['techs']} techs)"
            for c in result["clubs"]
        )
        rejected = sum(result.get("rejected", {}).values())
        extra = f", {rejected} rows rejected" if rejected else ""
        line = f"ingest {name}: {clubs}{extra} in {result['fetch_seconds'] + result['parse_seconds']:.2f}s"
        shortcut = _UNCHANGED_BY.get(result.get("unchanged_by") or "")
        if shortcut:
            line += f"; {shortcut}"
    return "\n".join([line, *explain_poll(result)])


def explain_poll(result: dict[str, Any]) -> list[str]:
    """Indented lines that say what a club should look at in its feed (nothing when all was well)."""
    lines = []
    examples = result.get("examples") or {}
    for reason, count in sorted(result.get("rejected", {}).items(), key=lambda item: (-item[1], item[0])):
        first = (examples.get(reason) or [None])[0]
        example = f", e.g. row {first['index']}: {for_terminal(first['value'])}" if first else ""
        lines.append(
            f"    rejected {count} row{'s' if count != 1 else ''} ({for_terminal(REASON_TEXT.get(reason, reason))})"
            f"{example}"
        )
    for club in result.get("clubs", []):
        if club["outcome"] == "held":
            lines.append(
                f"    held: club {club['club_id']} sent {club['calls']} calls where {club['previous_calls']} were"
                " published; the sudden-drop rule waits for the next poll to confirm"
            )
    for warning, count in sorted(result.get("warnings", {}).items()):
        text = for_terminal(WARNING_TEXT.get(warning, warning))
        lines.append(f"    warning: {count} row{'s' if count != 1 else ''} {text}")
    return lines


def banner(
    console: Console,
    config: LocalConfig,
    registry: ClubRegistry,
    *,
    clubs_file: Path,
    issuer: TokenIssuer | None,
    aws_url: str,
    club_server: ClubFeedServer | None,
) -> None:
    """What runs where: printed once everything listens."""
    console.say("CAPPI local mode")
    console.say(f"  API + token issuer   {config.base_url}")
    console.say(f"  pages (no token)     {config.base_url}/  (API reference at /docs, club status at /status)")
    console.say(f"  trusted issuer       {config.effective_issuer}   audience {config.effective_audience}")
    console.say(f"  DynamoDB + SSM       {aws_url} (moto)")
    clubs = "simulated demo clubs at " + club_server.base_url if club_server else f"from {clubs_file}"
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


PLACEHOLDER_TECH = "<TechId>"  # until a poll publishes a technician with open calls


def examples(console: Console, config: LocalConfig, issuer: TokenIssuer, example: tuple[int, str | None]) -> None:
    """Copy-paste commands: get a token, query `example` (a club and a technician with open calls; the technician
    None until a poll published one: then a placeholder, quoted for the shell), and the same with `cappi-client`."""
    client = issuer.clients[0]
    token_body = json.dumps(
        {
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "audience": config.effective_audience,
            "grant_type": "client_credentials",
        }
    )
    club_id, tech_id = example
    if tech_id is None:
        url = f"'{config.base_url}/api/CallData/OpenCalls/{club_id}/{PLACEHOLDER_TECH}/ids'"
        heading = f"Query a technician ({PLACEHOLDER_TECH}: one with open calls follows when a poll publishes one):"
    else:
        url = f"{config.base_url}{path_for(club_id, tech_id)}"
        heading = "Query a technician with open calls:"
    console.say("\nGet a token (the document's Authentication request):")
    console.say(
        f"  curl -s -X POST {config.base_url}/oauth/token -H 'Content-Type: application/json' -d '{token_body}'"
    )
    console.say(f"\n{heading}")
    console.say(
        f"  TOKEN=$(curl -s -X POST {config.base_url}/oauth/token -H 'Content-Type: application/json' "
        f"-d '{token_body}' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')"
    )
    console.say(f'  curl -s -H "Authorization: Bearer $TOKEN" {url}')
    # cappi-client finds this instance by its endpoints file (under CAPPI_STATE_DIR), so the command works anywhere.
    tech = f"'{PLACEHOLDER_TECH}'" if tech_id is None else tech_id
    console.say("\nThe same with cappi-client (clients/python; the venv has it):")
    console.say(
        f"  CAPPI_STATE_DIR={config.state_dir.resolve()} CAPPI_CLIENT_ID={client.client_id} "
        f"CAPPI_CLIENT_SECRET={client.client_secret} cappi-client open-calls {club_id} {tech} --env local"
    )
    console.say("")
