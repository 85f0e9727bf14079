"""What a session is configured with: config.toml, credentials, the model catalog, and the
precedence that resolves them into one ProxySettings. Imports nothing above it but errors.py.
"""
