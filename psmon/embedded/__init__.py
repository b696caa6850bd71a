"""Local stand-ins for production servers, for the demo and tests (not production)."""
