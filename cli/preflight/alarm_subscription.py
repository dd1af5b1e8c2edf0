"""Preflight: the alarm topic's e-mail subscription, pending confirmation or missing."""

from __future__ import annotations

from cli.aws import aws_error_code
from cli.cloudformation import resources
from cli.findings import OK, WARN, Finding
from cli.preflight.context import Context


def check_alarm_subscription(ctx: Context) -> list[Finding]:
    topics = {lid: ctx.name(p, "TopicName") for lid, _, p in resources(ctx.template, "AWS::SNS::Topic")}
    subscriptions: list[tuple[str | None, str]] = []  # (topic name, e-mail address)
    for _, _, props in resources(ctx.template, "AWS::SNS::Subscription"):
        if str(props.get("Protocol", "")).lower() in ("email", "email-json"):
            target = props.get("TopicArn")
            lid = target.get("Ref") if isinstance(target, dict) else None
            subscriptions.append((topics.get(lid) if lid else None, str(props.get("Endpoint"))))
    for lid, _, props in resources(ctx.template, "AWS::SNS::Topic"):
        for inline in props.get("Subscription") or []:
            if str(inline.get("Protocol", "")).lower() in ("email", "email-json"):
                subscriptions.append((topics.get(lid), str(inline.get("Endpoint"))))
    if not subscriptions:
        return [
            Finding(
                "alarm-subscription",
                WARN,
                "no e-mail subscription in the template: alarms reach nobody.",
                f"set `alarm_email` under {ctx.settings}.",
            )
        ]
    findings = []
    sns = ctx.client("sns")
    for topic, email in subscriptions:
        if not topic:
            findings.append(Finding("alarm-subscription", WARN, f"{email}: the topic has no plain name: not checked."))
            continue
        arn = f"arn:{ctx.partition}:sns:{ctx.region}:{ctx.account}:{topic}"
        try:
            found = [
                s
                for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=arn)
                for s in page.get("Subscriptions", [])
            ]
        except Exception as exc:
            if aws_error_code(exc) not in ("NotFound", "NotFoundException"):
                raise
            findings.append(
                Finding(
                    "alarm-subscription",
                    OK,
                    f"topic {topic} does not exist yet: the deploy subscribes {email}, and AWS mails it a link to "
                    f"confirm (alarms reach it only once confirmed).",
                )
            )
            continue
        mine = [s for s in found if s.get("Endpoint") == email and str(s.get("Protocol", "")).startswith("email")]
        if not mine:
            findings.append(
                Finding(
                    "alarm-subscription",
                    OK,
                    f"topic {topic}: the deploy subscribes {email}; AWS mails it a link to confirm.",
                )
            )
        elif any(s.get("SubscriptionArn") == "PendingConfirmation" for s in mine):
            findings.append(
                Finding(
                    "alarm-subscription",
                    WARN,
                    f"topic {topic}: the subscription of {email} is pending confirmation: alarms do not reach it.",
                    f"confirm the e-mail AWS sent to {email} ('AWS Notification - Subscription Confirmation'); "
                    f"expired after 3 days: delete the subscription and deploy again to get a new one.",
                )
            )
        else:
            findings.append(Finding("alarm-subscription", OK, f"topic {topic}: {email} is subscribed and confirmed."))
    return findings
