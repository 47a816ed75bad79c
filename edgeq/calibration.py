"""Calibration data sources, as users write them: `edgeq.calibration.images("photos/", ...)`."""

from edgeq.calibrate.data import arrays, from_path, generator, images

__all__ = ["arrays", "from_path", "generator", "images"]
