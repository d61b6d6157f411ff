"""Prefect tasks: small, retry-safe steps over the domain and the adapters."""
