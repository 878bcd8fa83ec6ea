"""The HTTP gateway (FastAPI): DICOMweb, uploads, jobs, results and lesion load, by API key."""
