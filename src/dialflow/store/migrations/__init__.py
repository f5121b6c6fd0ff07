"""Alembic migrations of the SQL schema (env.py, versions/); run by dialflow.store.migrate."""
