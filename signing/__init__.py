"""PAdES signing and validation (pyHanko) with file, PKCS#11 and remote (CSC-style) keys.

Entry point for the application: :func:`signing.http.setup_signing`.
"""
