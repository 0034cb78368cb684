"""The ``Mutation`` root, grouped per domain; every mutation is one transaction."""
