"""Language helpers shared by prepare/, data/, models/ and metrics/ (no I/O but package data)."""
