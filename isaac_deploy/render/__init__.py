"""Rendering: the files and command texts made from the model and templates."""
