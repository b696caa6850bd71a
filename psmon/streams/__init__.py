"""Stages 1 and 2: the Faust app, rolling windows, de-duplication, topic administration."""
