"""The GitHub simulator: REST API, job model, webhooks and the simulated runner processes."""

from tests.sandbox.github.sim import GithubSim

__all__ = ["GithubSim"]
