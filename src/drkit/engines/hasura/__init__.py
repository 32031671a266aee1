"""hasura."""
