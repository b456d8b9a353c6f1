"""Password hashing for tests: the production algorithm (Argon2) at its cheapest cost.

Django's default Argon2 cost (100 MiB, 8 lanes) takes a quarter of a CPU-second per hash;
the suite creates and logs in users hundreds of times. Hashes still start ``argon2$`` and
verify through ``Argon2PasswordHasher``; only the cost parameters are lower.
"""

from __future__ import annotations

from django.contrib.auth.hashers import Argon2PasswordHasher


class CheapArgon2PasswordHasher(Argon2PasswordHasher):
    time_cost = 1
    memory_cost = 64  # KiB
    parallelism = 1
