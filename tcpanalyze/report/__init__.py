"""Reporters: render a Report (console via rich, JSON, JUnit, ladder, plots)."""
