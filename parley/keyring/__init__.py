"""Envelope encryption: a KEK from a provider wraps per-tenant DEKs.

* ``providers``: where the KEK lives (``local``: a key from the environment or a
  file; ``vault``: OpenBao/Vault Transit, the KEK never leaves the vault).
* ``keys``: DEK creation, versioning, unwrapping (short in-process cache).
* ``fields``: AES-256-GCM field encryption bound to tenant, table, column, row.
"""
