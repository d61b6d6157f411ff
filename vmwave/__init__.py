"""vmwave: move a VMware vSphere estate to KubeVirt in scheduled waves.

Third-party plugins mark their hook implementations with ``vmwave.hookimpl``;
the hooks they may implement are specified in ``vmwave.hookspecs``.
"""

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("vmwave")
