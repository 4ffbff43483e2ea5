"""PAdES signing and validation (pyHanko) with file, PKCS#11 and remote (CSC-style) keys.

Entry point for the application: :func:`gateway.signing_routes.setup_signing (the HTTP edge lives in gateway/)`.
"""
