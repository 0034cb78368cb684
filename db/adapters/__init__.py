"""The only modules that reach into a dependency's private internals, one dependency each.

``aiosqlite``: run a function on a connection's own SQLite thread. ``sqlalchemy``: the
one-trip cursor under SQLAlchemy's aiosqlite dialect, and announcing driver SQL to event
listeners. ``tests/db/test_adapters.py`` checks every internal they rely on against the
installed version and names the library and version when an upgrade changes one.
"""
