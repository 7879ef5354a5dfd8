"""The steps of each use case (create a user, push a group, assign a license): validate, decide, call
the store, wake the worker. The one door into the store for SCIM, admin and console routes alike."""
