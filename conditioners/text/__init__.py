"""Text conditioners."""
