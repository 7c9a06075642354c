"""Custom pyinfra facts: each runs one command and only parses its output."""
