"""What each function may call on AWS, and on which of the stack's resources: the one definition both sides read.

infra grants exactly these statements to each function's role (resolving each resource kind to the stack's ARNs),
and the IAM-enforced suite (tests/integration/test_deployed_permissions.py) runs every handler path under exactly
these statements with moto's IAM enforcement on: a call the code makes that is missing here is refused there, and a
grant here that no path uses fails there too. Local mode runs its handlers under the same statements.

Logging (the function's own log group) and the on-failure destination of an asynchronous function are the
platform's grants, added by infra with the log group and the destination; they are not calls the code makes.
The release check's status call is a call its code makes, so it is listed here; CDK's deployment group grants it to
the pre-traffic hook by itself, on the same resource, and infra leaves it at that rather than grant it twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

# Resource kinds: what a statement's resources are, resolved by infra to ARNs of the stack and by the IAM-enforced
# suite and local mode to ARNs of their own resources.
TABLE = "table"  # the snapshot table
CLUB_SECRETS = "club-secrets"  # the SSM parameters of the registry's credentials (cappi.contracts.credentials)
INGEST_FUNCTION = "ingest-function"  # what dispatch invokes: the ingest function's live alias
QUERY_VERSIONS = "query-versions"  # the query function's version being released (the release check invokes it)
QUERY_DEPLOYMENT_GROUP = "query-deployment-group"  # CodeDeploy's deployment group that releases the query function


@dataclass(frozen=True, slots=True)
class Grant:
    resource: str  # one of the kinds above
    actions: tuple[str, ...]


ROLE_GRANTS: Mapping[str, tuple[Grant, ...]] = MappingProxyType(
    {
        # Reads heads in batches (BatchGetItem), a head on its own when a batch is not worth it (GetItem) and one
        # shard's parts (Query). Never writes.
        "query": (Grant(TABLE, ("dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:Query")),),
        # Reads heads and manifests before moving them; writes a version's parts in batches, its manifest and the
        # last poll, and moves the head and expiries with conditional updates. It never reads a shard back (no
        # Query), and old versions expire through TTL (no DeleteItem).
        "ingest": (
            Grant(TABLE, ("dynamodb:BatchWriteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")),
            # Each credential is a SecureString parameter read WithDecryption. It is encrypted with the AWS managed
            # key aws/ssm, whose key policy lets every principal of the account use it through Parameter Store
            # (kms:ViaService ssm.<region>.amazonaws.com, kms:CallerAccount): so no kms:Decrypt grant is needed
            # (AWS: "Restricting decryption of SecureString parameter values", docs.aws.amazon.com/systems-manager/
            # latest/userguide/ps-restrict-decryption.html). Access to a value is this GetParameter grant alone.
            Grant(CLUB_SECRETS, ("ssm:GetParameter",)),
        ),
        # Starts one asynchronous ingest per source of the tick's slot, and reads every enabled source's head in
        # batches (BatchGetItem, eventually consistent) to count the stale ones. Never writes.
        "dispatch": (
            Grant(INGEST_FUNCTION, ("lambda:InvokeFunction",)),
            Grant(TABLE, ("dynamodb:BatchGetItem",)),
        ),
        # CodeDeploy's pre-traffic hook: reads the enabled sources' heads in one batch to pick a club with a
        # snapshot, asks the new query version once, and tells CodeDeploy whether the release may go on.
        "release-check": (
            Grant(TABLE, ("dynamodb:BatchGetItem",)),
            Grant(QUERY_VERSIONS, ("lambda:InvokeFunction",)),
            Grant(QUERY_DEPLOYMENT_GROUP, ("codedeploy:PutLifecycleEventHookExecutionStatus",)),
        ),
    }
)


def grants_of(role: str) -> tuple[Grant, ...]:
    return ROLE_GRANTS[role]


def actions_of(role: str) -> frozenset[str]:
    return frozenset(action for grant in ROLE_GRANTS[role] for action in grant.actions)
