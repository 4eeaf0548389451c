"""Storage: the schema, its migrations, the writer and the queries. The only room that speaks SQL."""

from soak.storage.database import open_database

__all__ = ["open_database"]
