"""The REST API (FastAPI): seed 000's paths and the versioned /api/v1."""
