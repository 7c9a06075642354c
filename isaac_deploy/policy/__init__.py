"""Policy: decisions over facts (checks, what must stay for active jobs)."""
