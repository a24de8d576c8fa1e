"""Decisions: index + platform requirements, failed vs inconclusive, cache, audit."""
