"""Reusable console widgets; each module holds one concept and its DEFAULT_CSS."""
