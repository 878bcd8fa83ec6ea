"""Database access, one module per aggregate. Nothing else in the code base issues queries."""
