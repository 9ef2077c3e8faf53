"""Ingestors, one module per source, and their shared HTTP/S3/retry/cache helpers."""
