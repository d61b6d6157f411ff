"""Prefect flows: each reads like the process it automates."""
