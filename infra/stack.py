"""The CAPPI stack of one stage: storage, the polling pipeline, the query API and their monitoring."""

from __future__ import annotations

from typing import Any

from aws_cdk import Annotations, CfnOutput, Stack, Tags
from constructs import Construct

from cappi.contracts import stack as outputs
from cappi.contracts.stack import UNRESERVED_MINIMUM
from cappi.domain.registry import load_registry
from infra.api import QueryApi
from infra.config import StageConfig
from infra.egress import StaticEgress
from infra.ingest import IngestPipeline
from infra.monitoring import Monitoring
from infra.release import QueryRelease
from infra.storage import Storage


class CappiStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig, **kwargs: Any) -> None:
        super().__init__(
            scope,
            construct_id,
            description=f"CAPPI ({config.stage}): open call IDs of roadside-assistance clubs for tester apps",
            **kwargs,
        )
        self.config = config
        # Validate the registry at synth time: a broken registry must never reach a deploy.
        self.registry = load_registry(config.clubs_file)
        Tags.of(self).add("project", "cappi")
        Tags.of(self).add("stage", config.stage)

        self.storage = Storage(self, "Storage", config=config, registry=self.registry)
        self.egress = StaticEgress(self, "Egress", config=config) if config.static_egress else None
        self.pipeline = IngestPipeline(
            self, "Ingest", config=config, storage=self.storage, registry=self.registry, egress=self.egress
        )
        self.api = QueryApi(self, "Api", config=config, storage=self.storage)
        self._check_concurrency(config)
        self.monitoring = Monitoring(
            self, "Monitoring", config=config, registry=self.registry, pipeline=self.pipeline, api=self.api
        )
        self.release = QueryRelease(
            self, "QueryRelease", config=config, storage=self.storage, api=self.api, monitoring=self.monitoring
        )
        # What `cappi` (ops' command) reads to find this stage's table and functions.
        ingest = self.pipeline.ingest
        for name, value, description in (
            (outputs.TABLE_OUTPUT, self.storage.table.table_name, "Snapshot table (heads, versions, last polls)"),
            (
                outputs.INGEST_FUNCTION_OUTPUT,
                f"{ingest.function.function_name}:{ingest.live.alias_name}",
                "Ingest function's live alias (what scheduled polls run)",
            ),
            (outputs.STALE_AFTER_OUTPUT, str(config.stale_after_s), "Seconds after which a club's list is stale"),
        ):
            CfnOutput(self, name, value=value, description=description).override_logical_id(name)

    def _check_concurrency(self, config: StageConfig) -> None:
        """Lambda refuses a reservation that leaves fewer than 100 of the account's executions unreserved: say so
        at synth, with the figures, rather than halfway through a deploy."""
        reserved = sum(
            fn.reserved_concurrency or 0 for fn in (self.pipeline.ingest, self.pipeline.dispatch, self.api.query)
        )
        if config.account_concurrency - reserved < UNRESERVED_MINIMUM:
            Annotations.of(self).add_error(
                f"Stage {config.stage} reserves {reserved} concurrent executions (query: "
                f"{self.api.query.reserved_concurrency}, from throttle_rate or query_reserved_concurrency; ingest: "
                f"{self.pipeline.ingest.reserved_concurrency}, ingest_reserved_concurrency), which leaves fewer "
                f"than {UNRESERVED_MINIMUM} of account_concurrency={config.account_concurrency} unreserved. Lower "
                f"throttle_rate, query_reserved_concurrency or ingest_reserved_concurrency, or raise the account's "
                f"Lambda quota and set account_concurrency."
            )
