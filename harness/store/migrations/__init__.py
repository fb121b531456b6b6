"""Alembic migrations of the store (env.py, versions/); a package so the wheel ships env.py."""
