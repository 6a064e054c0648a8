"""User accounts: who may sign in, their sessions, and what each may see and spend."""
