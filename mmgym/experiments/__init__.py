"""Experiments built on the environments and the agents (``agents/``)."""
