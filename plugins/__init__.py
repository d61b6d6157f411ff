"""Built-in per-guest-OS plugins (installed as ``vmwave_plugins``).

Each module implements vmwave's hook specs (``vmwave.plugins.Specs``) with
``vmwave.hookimpl`` and registers through the ``vmwave`` entry-point group
exactly as a third-party plugin does.
"""
