"""The dashboard at /dashboard: server-rendered pages for the support person, calling the
domains' services (no SQL here)."""
