"""Device physics plans (filled in by the renovation)."""
