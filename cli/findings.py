"""What `cappi preflight` and `cappi smoke` report: findings (severity, what was found, what to do), one a line or
as JSON, and the exit code they make."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from typing import Any

from cappi.inert import for_terminal

FAIL, WARN, OK, ERROR = "FAIL", "WARN", "ok", "ERROR"
EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Finding:
    check: str  # concurrency, issuer, certificate, alarm-subscription, stack, leftover, credentials
    severity: str  # FAIL, WARN, ok, ERROR
    message: str  # what was found
    fix: str = ""  # what to change (empty for ok)

    def line(self) -> str:
        fix = f" Fix: {self.fix}" if self.fix else ""
        return f"{self.severity:<5} {self.check}: {self.message}{fix}"


def exit_code(findings: list[Finding]) -> int:
    """1 when something must change before a deploy; else 2 when a check could not run; else 0 (warnings too)."""
    if any(f.severity == FAIL for f in findings):
        return EXIT_PROBLEM
    if any(f.severity == ERROR for f in findings):
        return EXIT_USAGE
    return EXIT_OK


def verdict(findings: list[Finding]) -> str:
    severities = {f.severity for f in findings}
    for severity, word in ((FAIL, "fail"), (ERROR, "error"), (WARN, "warn")):
        if severity in severities:
            return word
    return "ok"


def report(findings: list[Finding], *, where: dict[str, Any], headline: str, as_json: bool) -> int:
    """Print the findings, as one JSON document (`where` and the verdict beside them) or one line each under
    `headline` (on stderr), and return the exit code they make."""
    if as_json:
        document = {**where, "verdict": verdict(findings), "findings": [asdict(f) for f in findings]}
        print(json.dumps(document, indent=2))
    else:
        print(headline, file=sys.stderr)
        for finding in findings:
            print(for_terminal(finding.line()))  # messages quote servers (an issuer's, the API's): inert on a terminal
    return exit_code(findings)
