"""isaac-deploy: pyinfra facts, operations and deploys for Isaac Lab extension projects."""

__version__ = "0.1.0"
