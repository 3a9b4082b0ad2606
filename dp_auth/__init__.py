"""Who may do what: identities, roles per workspace with per-flow overrides, service tokens, audit.

``permissions`` is the pure decision (no I/O, property-tested); ``access`` stores grants, tokens
and the audit trail in the flow store's database (migration 0004). docs/security.md, "Roles".
"""
