"""vmwave: move a VMware vSphere estate to KubeVirt in scheduled waves.

Third-party plugins mark their hook implementations with ``vmwave.hookimpl``.
"""

import pluggy

__version__ = "0.1.0"

hookspec = pluggy.HookspecMarker("vmwave")
hookimpl = pluggy.HookimplMarker("vmwave")
