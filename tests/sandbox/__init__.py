"""Local simulators of the OpenStack and GitHub APIs, with simulated runner VMs.

Tests, the demo and benchmarks drive them only through the real clients
(openstacksdk, the `openstack` CLI, PyGithub) over HTTP on loopback.
"""
