"""Names that cross a floor: the API (route, scope, claims, environments) and the metrics (names, units,
dimensions). `infra/`, `local/` and `tools/` import them from here, so a rename in one place changes every side."""
