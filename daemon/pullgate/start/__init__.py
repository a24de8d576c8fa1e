"""Enforcement at container start: verdicts bound to content and the start gate's core."""
