"""Edge stack modules: the public entry point and its monitoring."""
