"""Distinctive patient data of the synthetic DICOM studies: a test can prove it never leaks."""

PATIENT_NAME = "Zzyzx^Quentina"
PATIENT_ID = "PID-7731-SECRET"
