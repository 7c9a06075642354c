"""Custom pyinfra operations: each decides from facts which commands bring the state about."""
