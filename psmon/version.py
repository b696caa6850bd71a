"""psmon's version, in a module of its own so the CLI can print it without importing the
package's public facade (`psmon/__init__.py`, which sits above every layer)."""

__version__ = "0.1.0"
