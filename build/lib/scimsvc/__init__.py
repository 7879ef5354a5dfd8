"""scimsvc: a multi-tenant SCIM 2.0 service provider for seats, licenses and teams."""

__version__ = "0.1.0"
