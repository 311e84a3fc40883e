"""The HEK browser: the hierarchy, search, provenance, runs and versions as web pages (``hiexp browse``)."""
