"""Settings and typed job configs, the error hierarchy, the one light-curve schema (+ time helpers), the taxonomy."""
