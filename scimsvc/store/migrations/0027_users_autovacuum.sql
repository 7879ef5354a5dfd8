-- Keep the visibility map of users fresh as it grows. Paging, the checkpoint passes (store/pages.py) and
-- totalResults are index-only scans, which read the table for every page not marked all-visible since
-- the last VACUUM. PostgreSQL's defaults vacuum after inserts or changes of 20% of the table: at a million
-- users that is 200,000 rows read from the table by every count (a random page of 1M users: 2.4 s before
-- a VACUUM, 0.7 s after, bench/scale.py). These per-table settings vacuum and analyze after 1-2% instead;
-- each run is cheap on a table that is mostly all-visible already. No lock beyond SHARE UPDATE EXCLUSIVE.
ALTER TABLE users SET (
    autovacuum_vacuum_insert_scale_factor = 0.01,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02
);
