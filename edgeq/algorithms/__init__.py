"""Fidelity algorithms: each refines the float weights or the QuantPlan; registered in registry.py."""
