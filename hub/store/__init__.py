"""Storage: the database connection, the SQL layer, and the SQLite writer and integrator.

Everything that talks to SQLite or PostgreSQL directly lives here; the ledger, documents
and access layers use it through `Database` and `Sql`.
"""
