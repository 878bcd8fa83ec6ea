"""Follow-up reading: new, enlarging, stable and shrinking lesions between two studies."""
