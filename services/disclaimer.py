"""The research-use disclaimer every output carries (no imports: any module may use it)."""

RESEARCH_DISCLAIMER = "Research use only, unverified: not for diagnosis or treatment decisions."
"""Carried by every output; no one has verified the results and the product is not a device."""
