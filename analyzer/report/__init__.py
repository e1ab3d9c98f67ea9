"""Reporters: each format is a small module that turns the build's analysis into a string."""
