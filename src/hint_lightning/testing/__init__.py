"""Writers of tiny raw-data trees in the exact distributed formats, for tests and users."""
