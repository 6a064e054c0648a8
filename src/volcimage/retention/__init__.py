"""Retention: history and files past MAX_HISTORY_DAYS and MAX_STORAGE_GB removed (`plan`
decides, `cleanup` carries it out, `schedule` runs it by itself)."""
