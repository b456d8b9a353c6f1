"""Security context: users and authentication, authorisation, secrets and audit."""
