"""Kinds declared in a file, and the database's tables: what each kind's
table looks like, what differs between a file and a database (additive or
breaking), and applying the additive changes on the migration connection."""
