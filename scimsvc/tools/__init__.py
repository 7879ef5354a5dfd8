"""Tools that are not the server: the load generator and the embedded PostgreSQL/Redis of `scimsvc up`."""
