"""Persistence: SQLAlchemy tables, the database handle, repositories and the file stores."""
