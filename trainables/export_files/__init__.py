"""Files copied into exported tickets (kept free of this project's imports: they must load without it)."""
