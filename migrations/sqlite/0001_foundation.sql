-- Foundation: durable inbox, members, groups and daily activity. Times are epoch milliseconds (UTC);
-- days are local yyyymmdd integers in the configured time zone.

create table inbox (
    id integer primary key,
    channel_id text not null,
    dedupe_key text not null,
    kind text not null,
    sender text,
    group_id text,
    occurred_at bigint not null,
    received_at bigint not null,
    payload text not null,
    processed_at bigint,
    reply text,
    unique (channel_id, dedupe_key)
);
create index inbox_unprocessed on inbox (received_at) where processed_at is null;

create table members (
    id integer primary key,
    scope text not null,
    platform_user_id text not null,
    display_name text,
    first_seen_at bigint not null,
    last_active_at bigint not null,
    message_count bigint not null default 0,
    unique (scope, platform_user_id)
);

create table chat_groups (
    id integer primary key,
    scope text not null,
    platform_group_id text not null,
    name text,
    first_seen_at bigint not null,
    last_active_at bigint not null,
    unique (scope, platform_group_id)
);

create table group_members (
    group_id bigint not null references chat_groups (id),
    member_id bigint not null references members (id),
    joined_at bigint not null,
    left_at bigint,
    primary key (group_id, member_id)
) without rowid;
create index group_members_member on group_members (member_id);

-- Keyed by day first: today's rows cluster together and DAU/WAU/MAU read a key range.
create table member_daily_activity (
    day integer not null,
    member_id bigint not null references members (id),
    message_count bigint not null default 0,
    event_count bigint not null default 0,
    primary key (day, member_id)
) without rowid;
create index member_daily_activity_member on member_daily_activity (member_id);
