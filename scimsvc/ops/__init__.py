"""What operators watch: metrics, structured logs, queue health and the `scimsvc queue` view."""
