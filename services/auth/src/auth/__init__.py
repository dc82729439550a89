"""The auth service: users, argon2id passwords, EdDSA access tokens and rotating refresh tokens."""
