"""The database: DSNs, dialects (and what each failure means), the schema, SQL literals, the connection pool."""
