"""Strawberry types, one module per GraphQL type, each built from a table row."""
