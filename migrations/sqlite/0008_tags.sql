-- Member tags: the tags of a scope, which member has which (who or what set it, when), and a log
-- of every change, removals included.

create table tags (
    id integer primary key,
    scope text not null,
    name text not null,
    group_name text,
    color text,
    -- Where the tag came from: manual, rule, channel or platform.
    source text not null default 'manual',
    created_at bigint not null,
    unique (scope, name)
);

create table member_tags (
    member_id bigint not null references members (id),
    tag_id bigint not null references tags (id),
    source text not null,
    set_by text not null,
    set_at bigint not null,
    primary key (member_id, tag_id)
) without rowid;
create index member_tags_tag on member_tags (tag_id);

create table member_tag_log (
    id integer primary key,
    member_id bigint not null,
    tag_id bigint not null,
    -- add or remove
    action text not null,
    source text not null,
    set_by text not null,
    at bigint not null
);
create index member_tag_log_member on member_tag_log (member_id, at);
