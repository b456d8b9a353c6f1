"""Envelope-encryption engine: the keyring, AES-256-GCM data keys and the ciphertext format.

An engine room: it imports only its own modules, the kernel and libraries, never the
context's models or services, so it can be reasoned about (and audited) on its own.
"""
