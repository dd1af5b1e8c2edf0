"""The DynamoDB snapshot table: schema and `create_table`, write-unit cost model, item codec, and the store."""
