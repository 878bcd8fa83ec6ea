"""Workers: the job runner, its Celery app and tasks, and the dispatchers that feed it."""
