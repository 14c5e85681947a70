"""Django's PostgreSQL backend with a pool checkout that costs no round trip (`base.py`)."""
