"""The GraphQL layer (strawberry): types, queries, mutations, subscriptions and limits."""
