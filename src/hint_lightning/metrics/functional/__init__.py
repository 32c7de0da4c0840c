"""Functional cores of the grounding metrics: pure functions of tensors, per question."""
