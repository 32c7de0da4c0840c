"""Importance methods: one score per proposal for a decision, one class per method."""
