"""Database backends of jobsite: Django's own, with what a busy install needs."""
