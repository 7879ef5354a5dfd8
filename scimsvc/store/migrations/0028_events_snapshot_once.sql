-- A user's snapshot (`data.user`, the user as it is at the end of the batch) is stored once per user and
-- statement that writes a batch's events, in the user's first event of it; the user's other events of it keep
-- `{"user": {"id"}}` in `data` and point at that event with `snapshot_id`. Readers compose the two
-- (store/events.py:told_data), so every reader sees the same `data` as before. A drain writes two or
-- three events a user: this halves what the snapshots cost in rows, WAL and CPU. Nullable, no default:
-- adding it rewrites nothing.
ALTER TABLE events ADD COLUMN snapshot_id bigint;
