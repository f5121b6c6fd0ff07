"""The HTTP API (FastAPI): API.md's contract, published at /openapi.json."""
