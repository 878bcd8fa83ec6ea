"""Celery workers — built by the PACS-node issue."""
