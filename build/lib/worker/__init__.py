"""The scimsvc worker: arq jobs that apply outbox rows to product state."""
