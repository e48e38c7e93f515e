"""Channel adapters: the contract (``base``), the HTTP seam (``http``), the hostile-input
readers (``payload``) and the registry of kinds (``registry``). See docs/connectors.md.

This package is a leaf over the kernel: it imports nothing from conversations,
tenants or accounts (and no Django model), so any layer may use it.
"""
