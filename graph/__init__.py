"""GraphQL layer: the Strawberry schema, types, resolvers, loaders and the Starlette app."""
