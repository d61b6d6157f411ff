"""The lab Kubernetes: a Kubernetes REST API with simulated CDI and KubeVirt controllers.

No kube-apiserver runs on our machines, so the lab serves the API itself;
vmwave reaches it with the official client through a kubeconfig, as it would
a real cluster.
"""
