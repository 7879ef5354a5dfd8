-- A group push applied by the worker inserts tens of thousands of team_members rows in one statement;
-- their two foreign keys check each row with a lookup of its own (most of a 50,000-member push's apply
-- time). Every statement that writes team_members joins the tenant's teams and users, so it only writes
-- rows that exist; the foreign keys become statement-level triggers that keep their ON DELETE CASCADE
-- behaviour for users and teams, as 0007 did for group_members.
ALTER TABLE team_members DROP CONSTRAINT team_members_team_id_fkey;
ALTER TABLE team_members DROP CONSTRAINT team_members_user_id_fkey;

CREATE FUNCTION team_members_forget_users() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM team_members tm USING gone WHERE tm.user_id = gone.id;
    RETURN NULL;
END $$;

CREATE FUNCTION team_members_forget_teams() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM team_members tm USING gone WHERE tm.team_id = gone.id;
    RETURN NULL;
END $$;

CREATE TRIGGER users_delete_team_members AFTER DELETE ON users
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION team_members_forget_users();
CREATE TRIGGER teams_delete_team_members AFTER DELETE ON teams
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION team_members_forget_teams();
