"""pyinfra connectors shipped with isaac-deploy (registered as pyinfra.connectors entry points)."""
