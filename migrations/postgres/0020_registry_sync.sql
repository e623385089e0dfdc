-- The member registry kept true from WeCom: customer groups' owner and notice, how and by whom
-- each member joined a group, the staff member's remark on a customer, and the import runs
-- (resumable from their cursor) with the run that last saw each relation, so a finished run
-- knows what vanished.
alter table chat_groups add column owner text;
alter table chat_groups add column notice text;
alter table chat_groups add column seen_run bigint;
alter table chat_groups add column gone_at bigint;
alter table group_members add column join_scene bigint;
alter table group_members add column inviter text;
alter table group_members add column seen_run bigint;
alter table contact_follows add column remark text;
alter table contact_follows add column seen_run bigint;

create table sync_runs (
    id bigint generated always as identity primary key,
    channel_id text not null,
    what text not null,
    started_at bigint not null,
    finished_at bigint,
    cursor text not null default '',
    created bigint not null default 0,
    updated bigint not null default 0,
    unchanged bigint not null default 0,
    gone bigint not null default 0,
    errors bigint not null default 0,
    last_error text
);
create index sync_runs_open on sync_runs (channel_id, what, finished_at);
