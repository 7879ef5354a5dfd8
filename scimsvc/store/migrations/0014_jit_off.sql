-- No JIT compilation for this database's sessions. scimsvc's statements are short: compiling one costs more
-- than running it, and asyncpg's type lookup on a new connection is costed high enough to be compiled
-- (0.75 s on an idle machine). asyncpg turns JIT off around that lookup with a session setting, which a
-- transaction pooler (PgBouncer) may send to another server connection: the lookup then runs with JIT and
-- a request waiting for it gets 503 (README.md, Running at scale, PgBouncer). A setting of the database
-- holds for every session, pooled or not. Changing it needs the database's owner: a migrating role that
-- is not gets a notice, and README.md says to set it.
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET jit = off', current_database());
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'jit is left as it is: only the owner of database % may turn it off (README.md, PgBouncer)',
        current_database();
END
$$;
