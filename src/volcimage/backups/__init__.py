"""Backups: the database and the image files copied to a directory, and put back."""
