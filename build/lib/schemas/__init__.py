"""marshmallow schemas for SCIM resources and admin payloads, and the SCIM documents derived from them."""
