"""Prompt templates: a user's saved prompts and parameters, applied to the form in one click."""
