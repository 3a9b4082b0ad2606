"""Checks and launchers of a production deployment: ``dp deploy check``, the Celery worker
command that refuses bad settings, and the database roles user SQL runs under."""
