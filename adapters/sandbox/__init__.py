"""National-portal simulator (``dvcgw sandbox``); routes and admin switches: see ``app``."""

from adapters.sandbox.app import create_sandbox_app, run_sandbox

__all__ = ["create_sandbox_app", "run_sandbox"]
