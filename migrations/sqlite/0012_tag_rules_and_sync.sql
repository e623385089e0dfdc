-- Tag rules kept in the database (next to those in the configuration), the WeCom id of tags
-- mirrored from the corp tag library, which staff member each customer added (needed to mark
-- tags at WeCom, and to see a contact deleted), and a cursor for the tag mirror job.

create table tag_rules (
    id text primary key,
    -- keyword, regex, joined_group, channel_state, segment, points, earned, level, stage, activity
    kind text not null,
    pattern text not null,
    -- JSON arrays of tag names.
    add_tags text not null,
    remove_tags text not null,
    enabled boolean not null default true,
    created_at bigint not null,
    updated_at bigint not null
);

alter table tags add column platform_id text;
create index tags_platform on tags (scope, platform_id);

create table contact_follows (
    scope text not null,
    external_userid text not null,
    staff text not null,
    state text,
    added_at bigint not null,
    removed_at bigint,
    primary key (scope, external_userid, staff)
);

create table job_cursors (
    name text primary key,
    position bigint not null
);
