"""Preflight: every enabled source's credential parameter exists (a missing one fails each of its polls with
`secret_missing`), and is a SecureString. Which parameters each source reads comes from the template's metadata
(cappi.contracts.credentials.CREDENTIALS_METADATA); only their metadata is read, never a value."""

from __future__ import annotations

from cappi.contracts.credentials import CREDENTIALS_METADATA
from cli.credentials import existing_parameters
from cli.findings import FAIL, OK, WARN, Finding
from cli.preflight.context import Context


def check_credentials(ctx: Context) -> list[Finding]:
    wanted: dict[str, list[str]] = (ctx.template.get("Metadata") or {}).get(CREDENTIALS_METADATA) or {}
    if not wanted:
        return [Finding("credentials", OK, "no enabled source reads a credential.")]
    existing = existing_parameters(ctx.client("ssm"), {p for names in wanted.values() for p in names})
    # A stack deployed before credentials moved to SSM keeps them in Secrets Manager: migrate copies them.
    migrate = f" (or `cappi secrets migrate --stage {ctx.stage}` for values an earlier deploy kept in Secrets Manager)"
    findings = []
    for source, parameters in sorted(wanted.items()):
        for parameter in parameters:
            found = existing.get(parameter)
            if found is None:
                findings.append(
                    Finding(
                        "credentials",
                        FAIL,
                        f"source {source}: SSM parameter {parameter} does not exist: every poll of it would fail "
                        "with secret_missing.",
                        f"cappi secrets set {source} --stage {ctx.stage}"
                        + (migrate if ctx.stack_status is not None else "")
                        + '; or set "enabled": false on it in the stage\'s registry until the club sends it.',
                    )
                )
            elif found.get("Type") != "SecureString":
                findings.append(
                    Finding(
                        "credentials",
                        WARN,
                        f"source {source}: SSM parameter {parameter} is a {found.get('Type')}, stored unencrypted.",
                        f"store it again with cappi secrets set {source} --stage {ctx.stage} (a SecureString).",
                    )
                )
    if not findings:
        count = sum(len(p) for p in wanted.values())
        findings.append(
            Finding(
                "credentials",
                OK,
                f"all {count} credential parameters of {len(wanted)} enabled source(s) exist as SecureString.",
            )
        )
    return findings
