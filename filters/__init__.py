"""Plain, unit-testable document filters. Beam wiring lives in ``pipelines``."""
