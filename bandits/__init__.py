"""Contextual bandits that choose each request's knob arm, the decision log, and off-policy replay."""
