-- Ops commands in chat: roles granted with /role (they override the configuration), muted
-- members, and the audit log of every privileged command and refused attempt.

create table staff_roles (
    scope text not null,
    user_id text not null,
    -- admin, operator, or member (a role taken away).
    role text not null,
    granted_by text not null,
    granted_at bigint not null,
    primary key (scope, user_id)
);

create table muted_members (
    scope text not null,
    user_id text not null,
    muted_by text not null,
    muted_at bigint not null,
    primary key (scope, user_id)
);

create table command_audit (
    id bigint generated always as identity primary key,
    -- The chat message that carried the command: a retried delivery executes it once.
    source_key text not null unique,
    scope text not null,
    channel_id text not null,
    group_id text,
    user_id text not null,
    role text not null,
    command text not null,
    -- The parsed arguments as JSON.
    args text not null,
    -- ok, refused (role too low), invalid (bad usage) or failed.
    outcome text not null,
    reply text not null,
    created_at bigint not null
);
create index command_audit_time on command_audit (created_at);
