"""Built-in per-guest-OS plugins (installed as ``vmwave_plugins``).

They will implement vmwave's hook specs with ``vmwave.hookimpl`` and register
through the ``vmwave`` entry-point group exactly as third-party plugins do.
"""
