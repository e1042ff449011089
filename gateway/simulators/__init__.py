"""Device simulators that speak the real protocols' bytes (tests, demo, bench checks)."""
