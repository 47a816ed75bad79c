"""edgeq: quantize a float model once, ship verified integer artifacts."""
