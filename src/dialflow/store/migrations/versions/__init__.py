"""Alembic revisions, one file each, numbered 0001, 0002, … in a single line of history."""
