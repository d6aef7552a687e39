"""A2A tasks: durable and shared, beside the runs that execute them (SQLite or Redis)."""
