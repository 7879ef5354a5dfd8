-- A single-statement SCIM write (a user created or changed with its outbox row, store/users.py) carries
-- the latest moment its request still waits for it (store/db.py, BoundedPool.write_by). A statement that
-- reaches PostgreSQL later, held up by a network stall the request already gave up on with a 503, is
-- refused here instead of being applied behind the client's back. query_canceled: the same error as a
-- statement_timeout. A NULL limit (the worker's and the CLI's writes) is never late.
CREATE FUNCTION in_time(write_by timestamptz) RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL SAFE AS $$
BEGIN
    IF write_by IS NOT NULL AND clock_timestamp() > write_by THEN
        RAISE EXCEPTION 'write arrived after its request stopped waiting for it (at %)', write_by
            USING ERRCODE = 'query_canceled';
    END IF;
    RETURN true;
END
$$;
