"""Realistic portal event generator (`psmon simulate`)."""
