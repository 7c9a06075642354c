"""The isaac-deploy command line for everyday container work."""
