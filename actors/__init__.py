"""actors package (API is wired as modules land)."""
__all__ = []
