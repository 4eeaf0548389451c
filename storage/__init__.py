"""Storage: the schema, its migrations, the writer and the queries. The only room that speaks SQL."""

from soak.storage.database import check_before_writing, open_database

__all__ = ["check_before_writing", "open_database"]
