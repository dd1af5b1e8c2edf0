"""Preflight: a custom domain's certificate, in the deploy region, ISSUED, and for that domain."""

from __future__ import annotations

from cli.aws import aws_error_code
from cli.cloudformation import resources
from cli.findings import FAIL, OK, Finding
from cli.preflight.context import Context


def check_certificates(ctx: Context) -> list[Finding]:
    findings = []
    for logical_id, _, props in resources(ctx.template, "AWS::ApiGatewayV2::DomainName"):
        domain = ctx.name(props, "DomainName") or logical_id
        for configuration in props.get("DomainNameConfigurations") or []:
            arn = ctx.name(configuration, "CertificateArn")
            if not arn:
                findings.append(Finding("certificate", OK, f"{domain}: the certificate is created by the stack."))
                continue
            findings.append(_check_certificate(ctx, domain, arn))
    return findings


def _check_certificate(ctx: Context, domain: str, arn: str) -> Finding:
    where = f"`certificate_arn` under {ctx.settings}"
    arn_parts = arn.split(":")
    region = arn_parts[3] if len(arn_parts) > 5 else ""
    if region != ctx.region:
        return Finding(
            "certificate",
            FAIL,
            f"{domain}: certificate {arn} is in region {region or '?'}, the stack deploys to {ctx.region}: a regional "
            f"API's custom domain needs a certificate in its own region.",
            f"request (or import) a certificate for {domain} in ACM in {ctx.region}, validate it, and set {where}.",
        )
    try:
        certificate = ctx.client("acm").describe_certificate(CertificateArn=arn)["Certificate"]
    except Exception as exc:
        if aws_error_code(exc) != "ResourceNotFoundException":
            raise
        return Finding(
            "certificate",
            FAIL,
            f"{domain}: certificate {arn} does not exist in account {ctx.account}, region {ctx.region}.",
            f"request a certificate for {domain} in ACM in {ctx.region} and set {where}.",
        )
    status = certificate.get("Status")
    if status == "PENDING_VALIDATION":
        records = [
            f"{r['Name']} {r['Type']} {r['Value']}"
            for option in certificate.get("DomainValidationOptions") or []
            if isinstance(r := option.get("ResourceRecord"), dict)
        ]
        shown = f" ({'; '.join(records)})" if records else ""
        return Finding(
            "certificate",
            FAIL,
            f"{domain}: certificate {arn} is PENDING_VALIDATION: API Gateway accepts ISSUED certificates only.",
            f"create the DNS validation record(s) ACM shows{shown}, wait for ISSUED (minutes once DNS answers), then "
            f"deploy.",
        )
    if status != "ISSUED":
        return Finding(
            "certificate",
            FAIL,
            f"{domain}: certificate {arn} is {status}, not ISSUED.",
            f"request a new certificate for {domain} in {ctx.region}, validate it and set {where}.",
        )
    names = [certificate.get("DomainName"), *(certificate.get("SubjectAlternativeNames") or [])]
    if not any(_covers(str(n), domain) for n in names if n):
        return Finding(
            "certificate",
            FAIL,
            f"{domain}: certificate {arn} is for {', '.join(dict.fromkeys(map(str, filter(None, names))))}, not "
            f"{domain}.",
            f"use a certificate whose names include {domain} ({where}).",
        )
    return Finding("certificate", OK, f"{domain}: certificate {arn} is ISSUED in {ctx.region}.")


def _covers(name: str, domain: str) -> bool:
    name, domain = name.lower().rstrip("."), domain.lower().rstrip(".")
    if name.startswith("*."):
        return domain.count(".") == name.count(".") and domain.split(".", 1)[1] == name[2:]
    return name == domain
