"""The cluster deploys: plan, roll-out, jobs, results."""
