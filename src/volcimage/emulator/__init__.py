"""The built-in VolcEngine emulator."""
