"""verification.x509."""
