-- How many outbox rows are pending (applied_at IS NULL) is not asked of ANALYZE: it samples the outbox when
-- the worker has usually applied everything and records "none", and under that estimate every plan that
-- scans all pending rows looks free. The worker's statements on a resource's or a tenant's pending rows then
-- skipped the keys they were given (a resource's id, a tenant's id) and filtered the pending rows of every
-- tenant: with thousands of organizations writing at once each drain read the whole backlog (1,200
-- buffers a batch at 10,000 organizations, bench/scale.py). Without statistics on the column PostgreSQL
-- assumes a small constant share of pending rows (0.5 %), under which the keys narrow every such scan
-- (store/outbox.py, and the indexes of 0035).
ALTER TABLE outbox ALTER COLUMN applied_at SET STATISTICS 0;

-- ANALYZE keeps the statistics it took before. A superuser deletes them; any other owner changes the
-- column to its own type, which removes them too and rewrites no row, but rebuilds the indexes that name
-- applied_at (the three of pending rows, and outbox_applied_age over the applied rows the retention keeps)
-- under an exclusive lock: writes to the outbox wait for it.
DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        DELETE FROM pg_statistic
        WHERE starelid = 'outbox'::regclass
          AND staattnum = (SELECT attnum FROM pg_attribute
                           WHERE attrelid = 'outbox'::regclass AND attname = 'applied_at');
    ELSE
        ALTER TABLE outbox ALTER COLUMN applied_at TYPE timestamptz;
    END IF;
END $$;
