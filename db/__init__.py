"""Data layer: SQLModel tables, engine and sessions, Alembic migrations, seed data."""
