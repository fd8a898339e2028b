"""Ingestion: Segment-spec calls (HTTP API and file import) validated, merged and stored."""
