"""Benchmarks of postroom: ingest, delivery, listing at scale, worker memory (python -m bench)."""
