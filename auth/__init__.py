"""Authentication: password hashes, access and refresh tokens, the Authorization header."""
