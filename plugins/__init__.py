"""Built-in per-guest-OS plugins (installed as ``vmwave_plugins``).

Each module implements vmwave's hook specs (``vmwave.hookspecs``) with
``vmwave.hookimpl``, as a third-party plugin does; vmwave lists them by name
(``vmwave.plugins.BUILTINS``) and registers them as it registers installed
plugins, so an uninstalled checkout has them too.
"""
