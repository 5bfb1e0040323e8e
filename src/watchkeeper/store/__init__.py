"""Persistence: the database, its migrations, stored analyses and purging."""

from .db import Database, open_database, resolve_database_url

__all__ = ["Database", "open_database", "resolve_database_url"]
