"""Storage backends: memory, SQLite (and later PostgreSQL), one protocol."""
