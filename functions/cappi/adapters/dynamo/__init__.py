"""The DynamoDB snapshot table: schema and `create_table`, write-unit cost model, item codec, shard encoding, the
table's plumbing, and one module per consumer of it (writer, poll log, shard source, point-in-time reads)."""
