"""Packaged deploys: compositions of facts and operations that the deploy files call."""
