"""Image processing: raw scans to the model grid and back (N4, brain mask, registration)."""
