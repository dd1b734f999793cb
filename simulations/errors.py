"""The one error the simulation commands raise for bad input or a failed run.

Rules:
- ``SimulationError`` carries a one-line message; the CLI prints it and exits 1.
- A run that finds an invariant violation prints the details first, then raises
  ``SimulationError`` with the summary, so the command exits non-zero.
"""

from __future__ import annotations


class SimulationError(ValueError):
    """Raised for bad command-line input, or when a run found an invariant violation."""
