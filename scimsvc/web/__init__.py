"""The HTTP front end: the app factory, middlewares, routes (SCIM, admin, ops) and the console.

Each route parses the request, calls a service (`scimsvc/services/`) and renders; see ARCHITECTURE.md."""
