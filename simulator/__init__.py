"""A simulated world with a known click model, its logging policy, and the comparison of designs."""
