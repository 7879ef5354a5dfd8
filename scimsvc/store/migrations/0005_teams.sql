-- Product teams (with their members and boards) and the SCIM groups linked to them (README.md, SCIM Groups and teams).

CREATE TABLE teams (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- A group links to the team with exactly its name: names are unique per tenant, case-sensitively.
CREATE UNIQUE INDEX teams_tenant_name ON teams (tenant_id, name);

-- Product-side membership: what the worker applies from groups and domain teams, and manual edits.
CREATE TABLE team_members (
    team_id   uuid NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    user_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    added_by  text NOT NULL CHECK (added_by IN ('admin', 'scim', 'domain')),
    joined_at timestamptz NOT NULL DEFAULT now(),  -- "longest-standing member" for board hand-over
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user ON team_members (user_id);
CREATE INDEX team_members_seniority ON team_members (team_id, joined_at, user_id);

CREATE TABLE boards (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    team_id    uuid REFERENCES teams (id) ON DELETE SET NULL,
    owner_id   uuid REFERENCES users (id) ON DELETE SET NULL,
    title      text NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX boards_tenant ON boards (tenant_id, created_at, id);
CREATE INDEX boards_owner ON boards (owner_id);

-- A SCIM Group. `resource` is what the IdP sent except members (kept as rows below); `team_id` is the
-- team it linked to by name on creation (a team deleted later leaves the group unlinked).
CREATE TABLE groups (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    display_name text NOT NULL,
    external_id  text,
    team_id      uuid UNIQUE REFERENCES teams (id) ON DELETE SET NULL,
    resource     jsonb NOT NULL,
    version      bigint NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX groups_tenant_display_name ON groups (tenant_id, lower(display_name));
CREATE INDEX groups_tenant_external_id ON groups (tenant_id, external_id);
CREATE INDEX groups_tenant_paging ON groups (tenant_id, created_at, id);

-- The group's membership as the IdP last said it (desired state; the worker makes the team follow).
CREATE TABLE group_members (
    group_id uuid NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id);
