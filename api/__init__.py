"""HTTP gateway (FastAPI) — built by the PACS-node issue."""
