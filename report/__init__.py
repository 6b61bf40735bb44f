"""Headless views: render corpus descriptions and result frames for terminals and files."""
